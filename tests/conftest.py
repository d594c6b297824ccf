"""Shared test set-up: 8 host CPU devices (set before jax is imported) and small fixtures."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Persistent XLA cache: the same train step compiled by several tests (and CI re-runs) compiles once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.expanduser("~"), ".cache", "speechvae_jax", "xla-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower test guarding a real capability (still run in CI)")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    """A ~2-minute built-in corpus (13 speakers, 4 unseen in train, plus keyword splits).

    Built once per test session; returns its `corpus:DIR` spec. Splits: train, valid, test,
    keywords_train, keywords_valid, keywords_test (see docs/data.md).
    """
    from speechvae_jax import corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    return "corpus:" + corpus.build_corpus(str(out), minutes=2, seed=0, workers=2)
