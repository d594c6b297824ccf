"""Adaptive weighting of the alignment terms (METHOD.md) and the weight schedules.

w_k = ||grad_theta L_ref|| / (||grad_theta L_k|| + eps), theta = the encoder's last 1x1 layer
(kernel [C, O], bias [O]); w_k is a constant for the backward pass. The gradients w.r.t. that layer
follow from the cotangent at its output: `last_layer_grads(h, dL/dstats)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

SCHEDULES = ("fixed", "warmup", "staged")


def last_layer_grads(h: jax.Array, cotangent: jax.Array) -> dict[str, jax.Array]:
    """Gradient of a loss w.r.t. a Dense layer stats = h @ kernel + bias, from dL/dstats.

    h [B,T,C] (the layer's input), cotangent [B,T,O] -> {"kernel": [C,O], "bias": [O]} (float32).
    """
    if h.shape[:-1] != cotangent.shape[:-1]:
        raise ValueError(f"last_layer_grads: h {h.shape} and cotangent {cotangent.shape} differ "
                         "before the last axis")
    h32, ct32 = jnp.asarray(h, jnp.float32), jnp.asarray(cotangent, jnp.float32)
    lead = tuple(range(h.ndim - 1))
    return {"kernel": jnp.tensordot(h32, ct32, axes=(lead, lead)),
            "bias": jnp.sum(ct32, axis=lead)}


def grad_norm(tree) -> jax.Array:
    """L2 norm over all leaves of a pytree together (float32 scalar)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves))


def adaptive_weights(ref_grads, term_grads: dict, eps: float = 1e-6, clamp=None,
                     shared: bool = False) -> dict[str, jax.Array]:
    """{name: ||g_ref|| / (||g_name|| + eps)} with stop-gradient and optional clamp (min, max).

    shared=True (VA-VAE): one weight ||g_ref|| / (||sum_k g_k|| + eps) for the sum of the terms,
    returned under every name. shared=False (the release): one weight per term.
    """
    ref = grad_norm(ref_grads)
    if shared and term_grads:
        total = jax.tree_util.tree_map(lambda *g: sum(g), *term_grads.values())
        one = ref / (grad_norm(total) + eps)
        weights = {k: one for k in term_grads}
    else:
        weights = {k: ref / (grad_norm(g) + eps) for k, g in term_grads.items()}
    if clamp is not None:
        lo, hi = clamp
        weights = {k: jnp.clip(w, lo, hi) for k, w in weights.items()}
    return {k: jax.lax.stop_gradient(w) for k, w in weights.items()}


def schedule_factors(schedule_cfg, step, total_steps: int | None = None) -> dict[str, jax.Array]:
    """Alignment weight scale and margin switch at `step` (may be traced).

    kinds: "fixed" (scale 1, margins on); "warmup" (scale ramps linearly 0 -> 1 over
    [0, warmup_steps], margins on); "staged" (VA-VAE: scale stage_scales[i] for stage i where
    stage 0 = [0, b0), 1 = [b0, b1), 2 = [b1, inf) with (b0, b1) = boundaries; margins off before
    b1, on from b1). With schedule_cfg.boundaries_unit = "fraction" the boundaries are fractions of
    `total_steps` (the run's train.num_steps). Returns {"weight_scale": float32, "margins_on": bool}.
    """
    kind = schedule_cfg.kind
    step = jnp.asarray(step, jnp.float32)
    if kind == "fixed":
        return {"weight_scale": jnp.float32(1.0), "margins_on": jnp.bool_(True)}
    if kind == "warmup":
        n = max(float(schedule_cfg.warmup_steps), 1.0)
        return {"weight_scale": jnp.clip(step / n, 0.0, 1.0).astype(jnp.float32),
                "margins_on": jnp.bool_(True)}
    if kind == "staged":
        b0, b1 = schedule_cfg.boundaries
        if schedule_cfg.get("boundaries_unit", "steps") == "fraction":
            if total_steps is None:
                raise ValueError("alignment.schedule.boundaries_unit='fraction' needs the run's total steps")
            b0, b1 = round(b0 * total_steps), round(b1 * total_steps)
        if not 0 <= b0 <= b1:
            raise ValueError(f"alignment.schedule.boundaries must satisfy 0 <= b0 <= b1, got {(b0, b1)}")
        s0, s1, s2 = schedule_cfg.stage_scales
        scale = jnp.where(step < b0, s0, jnp.where(step < b1, s1, s2)).astype(jnp.float32)
        return {"weight_scale": scale, "margins_on": step >= b1}
    raise ValueError(f"alignment.schedule.kind must be one of {SCHEDULES}, got {kind!r}")
