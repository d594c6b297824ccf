"""Shared test set-up: 8 host CPU devices (set before jax is imported) and small fixtures."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower test guarding a real capability (still run in CI)")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> str:
    """A ~2-minute built-in corpus (13 speakers, 4 unseen in train, plus keyword splits).

    Built once per test session; returns its `corpus:DIR` spec. Splits: train, valid, test,
    keywords_train, keywords_valid, keywords_test (see docs/data.md).
    """
    from speechvae_jax.data import corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    return "corpus:" + corpus.build_corpus(str(out), minutes=2, seed=0, workers=2)
