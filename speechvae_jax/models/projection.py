"""Projection heads between the latent and the teacher space, and latent sub-space alignment.

Heads are trained with the generator and dropped at export. Directions (align_cfg.projection):
"linear" (the release: z [B,T,L] -> W z + b [B,T,D]), "mlp" (Dense, GELU, Dense) and "reverse"
(teacher -> latent: s [B,T,D] -> [B,T,L], the loss then compares in latent space). Use:
p = apply(params, z); s = apply(params, s, method="teacher") (identity unless "reverse").
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
    """`__call__(z [B,T,L]) -> p` and `teacher(s [B,T,D], low=False) -> s'`: the pair to compare.

    "linear"/"mlp": p = head(z) [B,T,D], s' = s. "reverse": p = z, s' = head(s) [B,T,L] (a second
    head for the lower layer's frames when two_layer). `init(rng, z)` creates every head.
    """
    kind: str
    teacher_dim: int
    latent_dim: int
    hidden: int
    two_layer: bool = False

    def setup(self):
        if self.kind == "linear":
            self.latent_to_teacher = nn.Dense(self.teacher_dim)
        elif self.kind == "mlp":
            self.latent_to_teacher = _MLP(self.hidden, self.teacher_dim)
        else:
            self.teacher_to_latent = nn.Dense(self.latent_dim)
            if self.two_layer:
                self.teacher_low_to_latent = nn.Dense(self.latent_dim)

    def __call__(self, z: jax.Array) -> jax.Array:
        z = jnp.asarray(z, jnp.float32)
        if self.kind != "reverse":
            return self.latent_to_teacher(z)
        if self.is_initializing():
            dummy = jnp.zeros(z.shape[:-1] + (self.teacher_dim,), jnp.float32)
            self.teacher(dummy)
            if self.two_layer:
                self.teacher(dummy, low=True)
        return z

    def teacher(self, s: jax.Array, low: bool = False) -> jax.Array:
        if self.kind != "reverse":
            return s
        s = jnp.asarray(s, jnp.float32)
        if low:
            if not self.two_layer:
                raise ValueError("projection: low=True needs alignment.teacher_layer_low set")
            return self.teacher_low_to_latent(s)
        return self.teacher_to_latent(s)


def make_projection(align_cfg, teacher_dim: int, latent_dim: int = 64) -> Projection:
    """The head align_cfg.projection describes, for a teacher of width teacher_dim and a latent of
    latent_dim channels (of which round(subspace_ratio * latent_dim) are aligned)."""
    kind = align_cfg.projection
    if kind not in PROJECTIONS:
        raise ValueError(f"alignment.projection must be one of {PROJECTIONS}, got {kind!r}")
    hidden = align_cfg.get("projection_hidden") or teacher_dim
    aligned = aligned_width(latent_dim, align_cfg.get("subspace_ratio", 1.0))
    return Projection(kind=kind, teacher_dim=int(teacher_dim), latent_dim=aligned, hidden=int(hidden),
                      two_layer=align_cfg.get("teacher_layer_low") is not None)


def aligned_width(latent_dim: int, ratio: float) -> int:
    """Channels aligned for a sub-space ratio: round(ratio * latent_dim), at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"alignment.subspace_ratio must be in (0, 1], got {ratio}")
    return min(latent_dim, max(1, int(round(ratio * latent_dim))))


def align_subspace(z: jax.Array, ratio: float) -> tuple[jax.Array, jax.Array]:
    """z [B,T,L] -> (z_aligned [B,T,k], z_for_decoder [B,T,L]), k = round(ratio * L).

    With ratio < 1 the first k channels are the aligned sub-space and are cut from the decoder's
    gradient (stop_gradient on those channels of the decoder's input). ratio = 1 aligns the whole
    latent and cuts nothing, as the release's default.
    """
    k = aligned_width(z.shape[-1], ratio)
    if k == z.shape[-1]:
        return z, z
    head = z[..., :k]
    return head, jnp.concatenate([jax.lax.stop_gradient(head), z[..., k:]], axis=-1)
