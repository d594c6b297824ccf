"""Least-squares GAN and feature-matching losses over discriminator outputs (float32).

`outs` is what `models.discriminators.Discriminators` returns: a list over sub-discriminators of
`(logits, feature_maps)`. Each loss sums over sub-discriminators (and layers) of per-item means.
"""
import jax
import jax.numpy as jnp


def _check(real_outs, fake_outs):
    if len(real_outs) != len(fake_outs):
        raise ValueError(f"discriminator outputs differ in length: {len(real_outs)} real vs {len(fake_outs)} fake")


def lsgan_discriminator_loss(real_outs, fake_outs):
    """sum_k mean((1 - D_k(real))^2) + mean(D_k(fake)^2): scalar float32."""
    _check(real_outs, fake_outs)
    total = jnp.zeros((), jnp.float32)
    for (real, _), (fake, _) in zip(real_outs, fake_outs):
        real, fake = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
        total += jnp.mean((1.0 - real) ** 2) + jnp.mean(fake ** 2)
    return total


def lsgan_generator_loss(fake_outs):
    """sum_k mean((1 - D_k(fake))^2): scalar float32."""
    return sum((jnp.mean((1.0 - jnp.asarray(fake, jnp.float32)) ** 2) for fake, _ in fake_outs),
               jnp.zeros((), jnp.float32))


def feature_matching_loss(real_outs, fake_outs):
    """sum_k sum_l mean |F_kl(real) - F_kl(fake)|, real features held constant: scalar float32."""
    _check(real_outs, fake_outs)
    total = jnp.zeros((), jnp.float32)
    for (_, real_maps), (_, fake_maps) in zip(real_outs, fake_outs):
        if len(real_maps) != len(fake_maps):
            raise ValueError(f"feature map lists differ in length: {len(real_maps)} vs {len(fake_maps)}")
        for r, f in zip(real_maps, fake_maps):
            r = jax.lax.stop_gradient(jnp.asarray(r, jnp.float32))
            total += jnp.mean(jnp.abs(r - jnp.asarray(f, jnp.float32)))
    return total
