"""Shared test set-up: 8 host CPU devices (set before jax is imported) and small fixtures."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower test guarding a real capability (still run in CI)")
