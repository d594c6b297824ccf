"""KL term of the VAE bottleneck (float32)."""
import jax.numpy as jnp


def vae_kl(mean, sigma, mask=None):
    """sum_c (mean^2 + sigma^2 - log sigma^2 - 1), averaged over batch and (valid) frames.

    mean, sigma: [B, T, L]; mask: optional [B, T] (1 = real frame). No 1/2 factor (as the release).
    Returns a float32 scalar.
    """
    mean = jnp.asarray(mean, jnp.float32)
    sigma = jnp.asarray(sigma, jnp.float32)
    var = sigma ** 2
    per_frame = jnp.sum(mean ** 2 + var - jnp.log(var) - 1.0, axis=-1)
    if mask is None:
        return jnp.mean(per_frame)
    mask = jnp.asarray(mask, jnp.float32)
    if mask.shape != per_frame.shape:
        raise ValueError(f"vae_kl: mask shape {mask.shape} != frames {per_frame.shape}")
    return jnp.sum(per_frame * mask) / jnp.maximum(jnp.sum(mask), 1.0)
