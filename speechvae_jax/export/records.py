"""The bytes of one exported record (msgpack) and the labels it carries.

A record is a msgpack map, keys in this order: `id` (str), `num_frames` (int T), `num_samples`
(int N of the source audio), `latent` (an array [T, L] in the export dtype), then every label of the
source utterance except `audio`, in the source's key order. Arrays are msgpack extension type 1
whose payload is msgpack `[dtype str, shape list, raw little-endian C-order bytes]`. Sample-domain
timings `X_starts` / `X_ends` (int [P], 16 kHz samples, end exclusive) are kept and also converted
to latent frames as `X_start_frames` = floor(start / hop) and `X_end_frames` =
max(ceil(end / hop), start_frame + 1), both clipped to [0, T].
"""
from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

ARRAY_EXT = 1


def _pack_array(a: np.ndarray) -> msgpack.ExtType:
    a = np.ascontiguousarray(a)
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    payload = msgpack.packb([dtype.str, list(a.shape), a.astype(dtype, copy=False).tobytes()])
    return msgpack.ExtType(ARRAY_EXT, payload)


def _default(obj: Any):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "OUS":
            return [_plain(v) for v in obj.tolist()]
        return _pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store a label of type {type(obj).__name__} in a latent record")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _ext_hook(code: int, data: bytes):
    if code != ARRAY_EXT:
        return msgpack.ExtType(code, data)
    dtype, shape, raw = msgpack.unpackb(data)
    return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape)


def frame_timings(starts: np.ndarray, ends: np.ndarray, hop: int, num_frames: int):
    """Sample spans int [P] (end exclusive) -> frame spans int32 [P] (end exclusive, >= start + 1)."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    start_f = np.clip(starts // hop, 0, num_frames)
    end_f = np.clip(np.maximum(-(-ends // hop), start_f + 1), 0, num_frames)
    return start_f.astype(np.int32), end_f.astype(np.int32)


def labels_of(utterance: dict, hop: int, num_frames: int) -> dict:
    """The labels of a standard utterance (everything but `id` / `audio`), with frame timings added."""
    out = {}
    for key, value in utterance.items():
        if key in ("id", "audio"):
            continue
        out[key] = value
        if key.endswith("_starts") and f"{key[:-len('_starts')]}_ends" in utterance:
            base = key[:-len("_starts")]
            start_f, end_f = frame_timings(value, utterance[f"{base}_ends"], hop, num_frames)
            out[f"{base}_start_frames"] = start_f
            out[f"{base}_end_frames"] = end_f
    return out


def encode_record(uid: str, latent: np.ndarray, num_samples: int, labels: dict) -> bytes:
    """latent [T, L] (already in the export dtype) + labels -> record bytes (deterministic)."""
    body = {"id": uid, "num_frames": int(latent.shape[0]), "num_samples": int(num_samples),
            "latent": _pack_array(latent)}
    for key, value in labels.items():
        if key in body:
            raise ValueError(f"utterance {uid!r}: label key {key!r} clashes with a record field")
        body[key] = value
    try:
        return msgpack.packb(body, default=_default, use_bin_type=True)
    except TypeError as err:
        raise TypeError(f"utterance {uid!r}: {err} (labels: {', '.join(labels)})") from None


def decode_record(data: bytes, keep_dtype: bool = False) -> dict:
    """record bytes -> dict; `latent` [T, L] comes back as float32 (or its stored dtype)."""
    rec = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False)
    if not keep_dtype:
        rec["latent"] = rec["latent"].astype(np.float32)
    return rec


def frames_for(num_samples: int, hop: int) -> int:
    """T = ceil(N / hop): the number of latent frames of an utterance of N samples."""
    return math.ceil(num_samples / hop)
