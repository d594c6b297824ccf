"""VAE bottleneck: encoder statistics -> mean, sigma -> reparameterised sample (float32)."""
import jax
import jax.numpy as jnp


def split_stats(stats):
    """stats [B, T, 2L] -> (mean [B, T, L], scale [B, T, L]), float32; mean is the first half."""
    stats = jnp.asarray(stats, jnp.float32)
    if stats.shape[-1] % 2:
        raise ValueError(f"split_stats: last dim must be even, got {stats.shape}")
    mean, scale = jnp.split(stats, 2, axis=-1)
    return mean, scale


def sigma_from_scale(scale):
    """sigma = softplus(scale) + 1e-4, float32, same shape."""
    return jax.nn.softplus(jnp.asarray(scale, jnp.float32)) + 1e-4


def posterior(stats):
    """stats [B, T, 2L] -> (mean, sigma) float32 [B, T, L]: the one way stats become a posterior."""
    mean, scale = split_stats(stats)
    return mean, sigma_from_scale(scale)


def sample(mean, sigma, rng):
    """z = mean + sigma * eps, eps ~ N(0, 1) drawn from `rng`; float32 [B, T, L]."""
    eps = jax.random.normal(rng, jnp.shape(mean), jnp.float32)
    return jnp.asarray(mean, jnp.float32) + jnp.asarray(sigma, jnp.float32) * eps
