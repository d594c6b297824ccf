"""Teacher targets at the latent rate: layer choice and 50 Hz -> 40 Hz resampling, pure functions.

Resampling follows the release (a fixed-size resize of the whole padded batch):
- "linear": PyTorch `F.interpolate(x, size=T, mode="linear", align_corners=False)`, i.e. output frame t
  reads source position (t + 0.5) * T_in / T - 0.5 (clamped at 0) with linear weights;
- "avgpool": PyTorch `F.adaptive_avg_pool1d(x, T)`, i.e. output frame t averages source frames
  floor(t * T_in / T) .. ceil((t + 1) * T_in / T) - 1.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.frames import frame_mask

METHODS = ("linear", "avgpool")


def layer_indices(layers: int | Sequence[int] | str, n: int) -> list[int]:
    """The hidden-state indices (0..n-1) a layer spec names, for a teacher with n hidden states.

    layers: an int (negative counts from the end), a list of ints (their mean), or "average"
    (all n hidden states, embeddings included). Raises ValueError naming a bad spec.
    """
    if isinstance(layers, str):
        if layers != "average":
            raise ValueError(f"teacher layers {layers!r}: use an int, a list of ints or 'average'")
        return list(range(n))
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer, list, tuple)):
        raise ValueError(f"teacher layers {layers!r}: use an int, a list of ints or 'average'")
    idx = [int(layers)] if isinstance(layers, (int, np.integer)) else [int(i) for i in layers]
    if not idx:
        raise ValueError("teacher layers: empty list")
    bad = [i for i in idx if not -n <= i < n]
    if bad:
        raise ValueError(f"teacher layers {bad} out of range for {n} hidden states (0..{n - 1})")
    return [i % n for i in idx]


def select_layers(hidden_states: Sequence[jax.Array], layers: int | Sequence[int] | str) -> jax.Array:
    """One hidden state [B,T,D] from the list of L+1 (index 0 = embeddings): the layer, or the mean
    of the layers, that `layers` names (see `layer_indices`)."""
    idx = layer_indices(layers, len(hidden_states))
    chosen = [hidden_states[i].astype(jnp.float32) for i in idx]
    return chosen[0] if len(chosen) == 1 else sum(chosen) / len(chosen)


def _linear_positions(t_in: int, t_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0 [T], i1 [T], lam [T]) of align_corners=False linear resizing, computed on the host."""
    src = (np.arange(t_out, dtype=np.float64) + 0.5) * (t_in / t_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), t_in - 1)
    i1 = np.minimum(i0 + 1, t_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def _pool_windows(t_in: int, t_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(start [T], end [T]) source windows of adaptive average pooling."""
    t = np.arange(t_out)
    return (t * t_in) // t_out, -((-(t + 1) * t_in) // t_out)


def resample_frames(x: jax.Array, num_frames: int, method: str = "linear") -> jax.Array:
    """Resize x [B,T_in,D] along time to [B,num_frames,D] (float32), see the module docstring."""
    if method not in METHODS:
        raise ValueError(f"resampling method {method!r} is not one of {METHODS}")
    x = x.astype(jnp.float32)
    t_in = x.shape[1]
    if method == "linear":
        i0, i1, lam = _linear_positions(t_in, num_frames)
        lam = jnp.asarray(lam)[None, :, None]
        return x[:, i0] * (1.0 - lam) + x[:, i1] * lam
    start, end = _pool_windows(t_in, num_frames)
    weights = ((np.arange(t_in)[None, :] >= start[:, None]) & (np.arange(t_in)[None, :] < end[:, None]))
    weights = weights / weights.sum(1, keepdims=True)
    return jnp.einsum("st,btd->bsd", jnp.asarray(weights, jnp.float32), x)


def target_frame_mask(sample_mask: jax.Array, t_in: int, num_frames: int, method: str = "linear",
                      hop: int = 320, receptive_field: int = 400, latent_hop: int = 400) -> jax.Array:
    """Valid latent-rate target frames [B,num_frames] (bool) of right-padded audio [B,N].

    Frame t is valid when it is a real latent frame (t < ceil(len / latent_hop)) and every teacher
    frame it reads is a real teacher frame (index < floor((len - receptive_field) / hop) + 1).
    """
    if method == "linear":
        i0, i1, lam = _linear_positions(t_in, num_frames)
        last_read = np.where(lam > 0, i1, i0)
    else:
        last_read = _pool_windows(t_in, num_frames)[1] - 1
    teacher_real = frame_mask(sample_mask, t_in, hop, receptive_field)
    return frame_mask(sample_mask, num_frames, latent_hop) & teacher_real[:, jnp.asarray(last_read)]


def teacher_targets(hidden_states: Sequence[jax.Array], layers: int | Sequence[int] | str, num_frames: int,
                    sample_mask: jax.Array | None, method: str = "linear", *, hop: int = 320,
                    receptive_field: int = 400, latent_hop: int = 400) -> tuple[jax.Array, jax.Array]:
    """Teacher targets at the latent rate.

    hidden_states: list of [B,T50,D]; layers: see `select_layers`; num_frames: latent frames T;
    sample_mask: [B,N] (1 = real sample) or None (all real). hop / receptive_field describe the
    teacher's conv stack (Teacher.hop, Teacher.receptive_field), latent_hop the VAE's.
    Returns (s [B,T,D] float32, frame_mask [B,T] bool); s is 0 where frame_mask is False.
    """
    x = select_layers(hidden_states, layers)
    s = resample_frames(x, num_frames, method)
    if sample_mask is None:
        return s, jnp.ones(s.shape[:2], bool)
    mask = target_frame_mask(sample_mask, x.shape[1], num_frames, method, hop, receptive_field, latent_hop)
    return jnp.where(mask[..., None], s, 0.0), mask
