"""Run a local (convolutional) sequence network on many variable-length items, exactly.

A network maps an input of F frames ([F * in_per_frame] along axis 1) to an output of F frames
([F * out_per_frame]); the encoder is in_per_frame = hop, out_per_frame = 1, the decoder the reverse.
Output frame t depends on input frames [t - left, t + right] (the receptive field, measured by
`receptive_field`). The *canonical* result for an item of T frames is the network applied to the
item followed by `right` zero frames, cropped to T frames. `run_padded` reproduces it for any
item: short items are zero-padded to a length bucket (>= T + right, so padding never reaches a kept
frame), long ones are cut into windows of the largest bucket that overlap by `left + right` frames
and are stitched. Each bucket length compiles once; batches always have the same row count per
bucket (missing rows are zeros), so there is no recompilation storm.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Piece:
    """Input frames [start, start + length) of item `item` (zeros beyond it); output frames
    [keep_from, keep_to) of the piece go to frames [keep_from + start, keep_to + start) of the item."""
    item: int
    start: int
    length: int
    keep_from: int
    keep_to: int


def plan_pieces(item: int, frames: int, left: int, right: int, buckets: Sequence[int]) -> list[Piece]:
    """The pieces that give the canonical output of one item of `frames` frames."""
    need = frames + right
    for b in sorted(buckets):
        if b >= need:
            return [Piece(item, 0, b, 0, frames)]
    width = max(buckets)
    if width <= left + right:
        raise ValueError(f"largest bucket {width} frames must exceed the receptive field "
                         f"{left} + {right} frames to encode long items in windows")
    pieces = [Piece(item, 0, width, 0, width - right)]
    done = width - right
    while done < frames:
        start = done - left
        keep_to = min(width - right, frames - start)
        pieces.append(Piece(item, start, width, left, keep_to))
        done = start + keep_to
    return pieces


def batch_rows(bucket: int, frames_per_batch: int) -> int:
    """Rows per batch for a bucket: as many items of `bucket` frames as fit in the frame budget."""
    return max(1, frames_per_batch // bucket)


def run_padded(fn: Callable, items: Sequence[np.ndarray], frames: Sequence[int], *, in_per_frame: int,
               out_per_frame: int, left: int, right: int, buckets: Sequence[int], frames_per_batch: int,
               progress: Callable[[int], None] | None = None) -> list:
    """Canonical outputs of `fn` for every item.

    fn: array [B, F * in_per_frame, ...] -> pytree of arrays [B, F * out_per_frame, ...].
    items[i]: array [n_i, ...] with n_i <= frames[i] * in_per_frame (zero-padded to it).
    Returns, per item, the pytree of numpy arrays [frames[i] * out_per_frame, ...].
    `progress(k)` is called after each batch with the number of input frames it held.
    """
    pieces = [p for i, f in enumerate(frames) for p in plan_pieces(i, int(f), left, right, buckets)]
    by_len: dict[int, list[Piece]] = {}
    for p in pieces:
        by_len.setdefault(p.length, []).append(p)
    outputs: list = [None] * len(items)
    for length in sorted(by_len):
        group = by_len[length]
        rows = batch_rows(length, frames_per_batch)
        for lo in range(0, len(group), rows):
            chunk = group[lo:lo + rows]
            batch = _gather(items, chunk, rows, length * in_per_frame)
            result = jax.tree.map(np.asarray, fn(jnp.asarray(batch)))
            for r, p in enumerate(chunk):
                _scatter(outputs, result, r, p, frames[p.item], out_per_frame)
            if progress is not None:
                progress(sum(min(frames[p.item] - p.start, p.length) for p in chunk))
    return outputs


def _gather(items, chunk: list[Piece], rows: int, width: int) -> np.ndarray:
    first = np.asarray(items[chunk[0].item])
    batch = np.zeros((rows, width) + first.shape[1:], first.dtype)
    for r, p in enumerate(chunk):
        x = np.asarray(items[p.item])
        in_per_frame = width // p.length
        seg = x[p.start * in_per_frame:(p.start + p.length) * in_per_frame]
        batch[r, :seg.shape[0]] = seg
    return batch


def _scatter(outputs: list, result, row: int, p: Piece, frames: int, out_per_frame: int) -> None:
    if outputs[p.item] is None:
        outputs[p.item] = jax.tree.map(
            lambda a: np.zeros((frames * out_per_frame,) + a.shape[2:], a.dtype), result)
    a, b = p.keep_from * out_per_frame, p.keep_to * out_per_frame
    off = p.start * out_per_frame

    def put(dst, src):
        dst[off + a:off + b] = src[row, a:b]

    jax.tree.map(put, outputs[p.item], result)


def receptive_field(fn: Callable, example_shape: tuple, *, in_per_frame: int, out_per_frame: int,
                    probe_frames: int = 64, max_frames: int = 4096,
                    scales: Sequence[float] = (1.0, 1e-2, 1e-4)) -> tuple[int, int]:
    """(left, right) receptive field of `fn` in frames, measured from its gradient support.

    fn maps [1, F * in_per_frame, *example_shape] to a pytree of [1, F * out_per_frame, ...]. The
    probe input is random (so no path is accidentally silent) at several `scales` and the supports
    are united, so a saturating output (tanh) cannot hide part of the field. The probe grows until
    the support stays inside it; a network whose field exceeds `max_frames` is not local and raises.
    """
    frames = probe_frames
    while frames <= max_frames:
        mid = frames // 2
        width = frames * in_per_frame

        def target(inp):
            out = fn(inp)
            return sum(jnp.sum(leaf[:, mid * out_per_frame:(mid + 1) * out_per_frame].astype(jnp.float32))
                       for leaf in jax.tree.leaves(out))

        grad = jax.jit(jax.grad(target))
        x = jax.random.normal(jax.random.PRNGKey(0), (1, width) + tuple(example_shape))
        support = np.zeros(width, bool)
        for scale in scales:
            g = np.abs(np.asarray(grad(x * scale))[0]).reshape(width, -1)
            support |= g.max(axis=1) > 0
        touched = np.nonzero(support)[0]
        if touched.size == 0:
            raise ValueError("receptive field: the output does not depend on the input at any probe scale")
        lo, hi = int(touched.min()), int(touched.max())
        if lo > 0 and hi < width - 1:
            return mid - lo // in_per_frame, hi // in_per_frame - mid
        frames *= 2
    raise ValueError(f"receptive field exceeds {max_frames} frames: the network is not local and "
                     "cannot be encoded exactly in windows")
