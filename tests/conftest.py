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
