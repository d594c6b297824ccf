"""Exported latents: `speechvae export` (writer), reading back (`latent_source`), `speechvae decode`."""
from speechvae_jax.export.reader import LatentSource, latent_source

__all__ = ["LatentSource", "latent_source"]
