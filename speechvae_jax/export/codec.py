"""Exact whole-utterance encoding and decoding with an `InferenceModel`, in length buckets.

The canonical latent of an utterance of N samples (T = ceil(N / hop) frames) is the encoder applied
to the audio followed by enough zeros to cover the encoder's right receptive field, cropped to T
frames; it does not depend on batch, bucket or window (see `stitch`). Decoding is canonical the same
way. Shapes: audio float32 [N], latent float32 [T, L], decoded audio float32 [T * hop].
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from speechvae_jax.export import stitch

DEFAULT_BUCKETS = (64, 128, 192, 256, 384, 512, 768, 1024)


@dataclasses.dataclass(frozen=True)
class Buckets:
    """Length buckets in latent frames, the per-batch frame budget, and the longest accepted input."""
    frames: Sequence[int] = DEFAULT_BUCKETS
    frames_per_batch: int = 1024
    max_seconds: float = 600.0


def _encode_fn(model):
    def fn(audio):
        mean, sigma, _ = model.encode(audio, jnp.ones_like(audio))
        return mean, sigma
    return fn


_CONTEXTS: dict[tuple[str, str], tuple[int, int]] = {}


def _cached(kind: str, model, measure: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    """The field depends on the architecture only, so it is measured once per model config."""
    key = (kind, json.dumps(model.config.model.to_dict(), sort_keys=True))
    if key not in _CONTEXTS:
        _CONTEXTS[key] = measure()
    return _CONTEXTS[key]


def encoder_context(model) -> tuple[int, int]:
    """(left, right) receptive field of the encoder in latent frames."""
    return _cached("encoder", model, lambda: stitch.receptive_field(
        _encode_fn(model), (), in_per_frame=model.hop, out_per_frame=1))


def decoder_context(model) -> tuple[int, int]:
    """(left, right) receptive field of the decoder in latent frames."""
    return _cached("decoder", model, lambda: stitch.receptive_field(
        model.decode, (model.latent_dim,), in_per_frame=1, out_per_frame=model.hop))


def encode_utterances(model, audios: Sequence[np.ndarray], context: tuple[int, int], buckets: Buckets,
                      progress: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """audio float32 [N_i] -> (mean, sigma) float32 [T_i, L] each, canonical."""
    frames = [-(-len(a) // model.hop) for a in audios]
    out = stitch.run_padded(_encode_fn(model), audios, frames, in_per_frame=model.hop, out_per_frame=1,
                            left=context[0], right=context[1], buckets=buckets.frames,
                            frames_per_batch=buckets.frames_per_batch, progress=progress)
    return [(np.asarray(m, np.float32), np.asarray(s, np.float32)) for m, s in out]


def decode_utterances(model, latents: Sequence[np.ndarray], context: tuple[int, int],
                      buckets: Buckets) -> list[np.ndarray]:
    """latent [T_i, L] -> audio float32 [T_i * hop] each, canonical."""
    frames = [int(z.shape[0]) for z in latents]
    out = stitch.run_padded(model.decode, [np.asarray(z, np.float32) for z in latents], frames,
                            in_per_frame=1, out_per_frame=model.hop, left=context[0], right=context[1],
                            buckets=buckets.frames, frames_per_batch=buckets.frames_per_batch)
    return [np.asarray(a, np.float32) for a in out]
