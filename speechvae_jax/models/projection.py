"""Projection heads between the latent and the teacher space, and latent sub-space alignment.

Heads are trained with the generator and dropped at export. Directions (align_cfg.projection):
"linear" (the release: z [B,T,L] -> W z + b [B,T,D]), "mlp" (Dense, GELU, Dense) and "reverse"
(teacher -> latent: s [B,T,D] -> [B,T,L], the loss then compares in latent space).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

PROJECTIONS = ("linear", "mlp", "reverse")


class _MLP(nn.Module):
    hidden: int
    features: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.features, name="out")(nn.gelu(nn.Dense(self.hidden, name="hidden")(x)))


class Projection(nn.Module):
    """`__call__(z [B,T,L], s [B,T,D] | None, s_low [B,T,D] | None)` -> the pairs to compare:
    {"p": [B,T,*], "s": [B,T,*] | None, "s_low": [B,T,*] | None}, which feed
    `losses.alignment.alignment_terms(cfg, mask=..., **pairs)`. Forward kinds project z and pass
    the teacher frames through; "reverse" passes z through and projects s (and s_low, with its
    own head when two_layer). At init, missing teacher inputs are replaced by zeros so every
    head's parameters exist."""
    kind: str
    teacher_dim: int
    hidden: int
    two_layer: bool = False

    @nn.compact
    def __call__(self, z, s=None, s_low=None):
        z = jnp.asarray(z, jnp.float32)
        if self.kind == "linear":
            return {"p": nn.Dense(self.teacher_dim, name="latent_to_teacher")(z), "s": s, "s_low": s_low}
        if self.kind == "mlp":
            head = _MLP(self.hidden, self.teacher_dim, name="latent_to_teacher")
            return {"p": head(z), "s": s, "s_low": s_low}
        dummy = jnp.zeros(z.shape[:-1] + (self.teacher_dim,), jnp.float32)
        init = self.is_initializing()
        s = dummy if s is None and init else s
        s_low = dummy if s_low is None and init and self.two_layer else s_low
        out = {"p": z, "s": None, "s_low": None}
        if s is not None:
            out["s"] = nn.Dense(z.shape[-1], name="teacher_to_latent")(jnp.asarray(s, jnp.float32))
        if s_low is not None:
            out["s_low"] = nn.Dense(z.shape[-1], name="teacher_low_to_latent")(
                jnp.asarray(s_low, jnp.float32))
        return out


def make_projection(align_cfg, teacher_dim: int) -> Projection:
    """The projection head align_cfg.projection describes, for a teacher of width teacher_dim."""
    kind = align_cfg.projection
    if kind not in PROJECTIONS:
        raise ValueError(f"alignment.projection must be one of {PROJECTIONS}, got {kind!r}")
    hidden = align_cfg.get("projection_hidden") or teacher_dim
    return Projection(kind=kind, teacher_dim=int(teacher_dim), hidden=int(hidden),
                      two_layer=align_cfg.get("teacher_layer_low") is not None)


def align_subspace(z: jax.Array, ratio: float) -> tuple[jax.Array, jax.Array]:
    """z [B,T,L] -> (z_aligned [B,T,k], z_for_decoder [B,T,L]), k = round(ratio * L).

    With ratio < 1 the first k channels are the aligned sub-space and are cut from the decoder's
    gradient (stop_gradient on those channels of the decoder's input). ratio = 1 aligns the whole
    latent and cuts nothing, as the release's default.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"alignment.subspace_ratio must be in (0, 1], got {ratio}")
    k = max(1, int(round(ratio * z.shape[-1])))
    if k >= z.shape[-1]:
        return z, z
    head = z[..., :k]
    return head, jnp.concatenate([jax.lax.stop_gradient(head), z[..., k:]], axis=-1)
