"""`python -m speechvae_jax ...` is the same as the `speechvae` command."""
from speechvae_jax.cli import run

if __name__ == "__main__":
    run()
