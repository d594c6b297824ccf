"""Benchmarks: `python -m speechvae_jax.bench.<name>` prints figures (never asserted in tests)."""
