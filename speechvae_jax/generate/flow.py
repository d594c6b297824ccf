"""Conditional flow matching (linear path, sigma 0) and its ODE samplers, for any velocity function.

Path x_t = (1 - t) x0 + t x1 from noise x0 ~ N(0, I) at t = 0 to data x1 at t = 1; the regression
target is the constant velocity x1 - x0. Sampling integrates dx/dt = v(x, t) from t = 0 to 1 on a
time grid (uniform, or bent towards t = 0 by sway sampling) with Euler or midpoint steps in one
`lax.scan`. All float32.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

METHODS = ("euler", "midpoint")


def linear_path(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x0, x1 [B, ...], t [B] -> (x_t [B, ...], target velocity x1 - x0 [B, ...])."""
    tb = t.reshape(t.shape + (1,) * (x1.ndim - 1)).astype(jnp.float32)
    return (1.0 - tb) * x0 + tb * x1, x1 - x0


def masked_mse(pred: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    """Mean over channels of (pred - target)^2 [B, T, C], averaged over frames where weight [B, T] > 0."""
    err = jnp.mean(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1)
    weight = weight.astype(jnp.float32)
    return jnp.sum(err * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def sway_times(nfe: int, sway: float | None = None) -> jax.Array:
    """The time grid [nfe + 1] from 0 to 1: uniform, or t + s (cos(pi t / 2) - 1 + t) with s = sway.

    s < 0 puts more steps near t = 0 (s = -1 gives 1 - cos(pi t / 2)); None or 0 is uniform.
    """
    if nfe < 1:
        raise ValueError(f"nfe must be >= 1, got {nfe}")
    t = jnp.linspace(0.0, 1.0, nfe + 1, dtype=jnp.float32)
    if sway:
        t = t + sway * (jnp.cos(jnp.pi / 2 * t) - 1 + t)
    return t


def integrate(velocity: Callable[[jax.Array, jax.Array], jax.Array], x0: jax.Array, times: jax.Array,
              method: str = "euler") -> jax.Array:
    """Solve dx/dt = velocity(x, t) (t a scalar) from x0 at times[0] to times[-1] in len(times) - 1 steps."""
    if method not in METHODS:
        raise ValueError(f"sampling method must be one of {METHODS}, got {method!r}")

    def step(x, ts):
        t0, t1 = ts
        dt = t1 - t0
        if method == "euler":
            return x + dt * velocity(x, t0), None
        mid = x + 0.5 * dt * velocity(x, t0)
        return x + dt * velocity(mid, t0 + 0.5 * dt), None

    x, _ = jax.lax.scan(step, x0.astype(jnp.float32), (times[:-1], times[1:]))
    return x


def guided(v_cond: jax.Array, v_uncond: jax.Array, scale: float | jax.Array) -> jax.Array:
    """Classifier-free guidance v_u + scale (v_c - v_u): scale 1 is the conditional velocity, 0 the
    unconditional one; F5-TTS's `cfg_strength` c is scale 1 + c."""
    return v_uncond + scale * (v_cond - v_uncond)
