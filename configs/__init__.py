"""Run configs: each file's `get_config(variant)` returns an ml_collections ConfigDict; its docstring
gives the command. Installed with the package as `speechvae_jax.configs` (setup.py)."""
