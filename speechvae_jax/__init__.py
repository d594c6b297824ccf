"""speechvae_jax: a 16 kHz speech VAE (40 Hz, 64-d latent) aligned to SSL teachers, in JAX/Flax."""

__version__ = "0.1.0"
