"""speechvae_jax: speech VAEs with SSL-aligned latents, in JAX/Flax.

Install (what `launch/setup.sh` does): `pip install -e .[eval,torch,test]`.
"""
from setuptools import find_packages, setup

# Versions that resolve and work together on Python 3.11 (seen 2026-11-25).
CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "grain==0.2.18",
    "tensorflow-datasets==4.9.10",
    "importlib_resources",  # tfds builders import it lazily; absent from a bare venv
    "librosa==0.11.0",
    "ml-collections==1.1.0",
    "absl-py",
    "numpy",
    "soundfile",
    "soxr",
    "tqdm",
    "tensorboardX",
    "matplotlib",
    "safetensors",
    "scikit-learn",  # k-means targets of the in-house teacher (also a librosa dependency)
]

EXTRAS = {
    # Offline scorers for `speechvae evaluate`. resemblyzer's own `webrtcvad`
    # requirement is replaced by `webrtcvad-wheels` (launch/setup.sh installs
    # resemblyzer with --no-deps for that reason).
    "eval": [
        "pesq",
        "pystoi",
        "jiwer",
        "speechmos",
        "onnxruntime",
        "pocketsphinx",
        "webrtcvad-wheels",
        "torch==2.13.0",
    ],
    # PyTorch reference models for teacher weight import and parity tests.
    "torch": ["torch==2.13.0", "transformers>=5,<6"],
    "test": ["pytest", "pytest-xdist"],
}

setup(
    name="speechvae_jax",
    version="0.1.0",
    description="Speech VAE (16 kHz, 40 Hz, 64-d latent) aligned to SSL teachers, in JAX/Flax",
    packages=find_packages(include=["speechvae_jax", "speechvae_jax.*"]),
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["speechvae=speechvae_jax.cli:run"]},
)
