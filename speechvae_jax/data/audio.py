"""Audio decoding and conditioning: decode, mono mix, resample to 16 kHz, normalise, validate.

Every problem with one file or record raises `AudioError(where, reason)`; pipelines catch it and
record a counted, logged skip in a `SkipLog` instead of crashing.
"""
from __future__ import annotations

import collections
import os
import struct
import threading

import numpy as np
import soundfile as sf
import soxr
from absl import logging

from speechvae_jax.constants import SAMPLE_RATE

MIN_RATE, MAX_RATE = 1000, 384000
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
NORMALIZE_MODES = ("none", "peak", "rms")
PEAK_TARGET = 0.95
RMS_TARGET = 0.05  # about -26 dBFS


class AudioError(ValueError):
    """One unusable file or record. `where` is its path or id, `reason` what is wrong."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = str(where), reason


class SkipLog:
    """Counts and logs skipped items (each distinct item logged once, repeats counted). Thread-safe:
    Grain's reader threads may report the same item at the same time."""

    def __init__(self, name: str = "data"):
        self.name = name
        self.errors: list[AudioError] = []
        self.repeats: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    def add(self, err: AudioError) -> None:
        key = (err.where, err.reason)
        with self._lock:
            if key not in self.repeats:
                self.errors.append(err)
                logging.warning("%s: skipping %s (%d distinct items skipped so far)", self.name, err,
                                len(self.errors))
            self.repeats[key] += 1

    def __getstate__(self) -> dict:  # copied into Grain worker processes: a lock does not pickle
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def __len__(self) -> int:
        """Number of distinct items skipped."""
        return len(self.errors)

    def counts(self) -> dict[str, int]:
        """Distinct skipped items per reason kind (the text before the first ':' of the reason)."""
        return dict(collections.Counter(e.reason.split(":")[0] for e in self.errors))

    def summary(self) -> str:
        if not self.errors:
            return f"{self.name}: no items skipped"
        lines = [f"{self.name}: {len(self.errors)} items skipped "
                 f"({sum(self.repeats.values())} skips in all)"]
        lines += [f"  {e.where}: {e.reason}" for e in self.errors]
        return "\n".join(lines)


def _wav_truncated(path: str) -> str | None:
    """For RIFF/WAVE files: a message if the data chunk claims more bytes than the file holds."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = os.fstat(f.fileno()).st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                have = size - pos - 8
                if clen != 0xFFFFFFFF and clen > have:
                    return f"truncated: data chunk declares {clen} bytes, file holds {have}"
                return None
            pos += 8 + clen + (clen & 1)
    return None


def resample(x: np.ndarray, rate: int, where: str = "audio") -> np.ndarray:
    """float32 [N] at `rate` -> float32 [M] at 16 kHz (soxr HQ)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(where, f"bad sample rate: {rate} Hz outside [{MIN_RATE}, {MAX_RATE}]")
    if rate == SAMPLE_RATE:
        return x.astype(np.float32)
    return soxr.resample(x.astype(np.float32), rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """float32 [N] played `factor` times faster -> float32 [about N / factor] (soxr HQ).

    Pitch and formants both move by `factor` (speed perturbation, not a pitch shift).
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    return soxr.resample(x.astype(np.float32), factor, 1.0, quality="HQ").astype(np.float32)


def condition(x: np.ndarray, rate: int, where: str, normalize: str = "none") -> np.ndarray:
    """Validate and convert decoded audio ([N] or [N, C], any rate) to float32 [M] at 16 kHz.

    Multi-channel input is mixed to mono; values beyond [-1, 1] are scaled back by the peak.
    """
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise AudioError(where, f"bad shape: audio of shape {x.shape}")
    if x.size == 0:
        raise AudioError(where, "empty: zero-length audio")
    if not np.all(np.isfinite(x)):
        raise AudioError(where, f"non-finite: {int(np.sum(~np.isfinite(x)))} NaN/Inf samples")
    x = resample(x, int(rate), where)
    if x.size == 0:
        raise AudioError(where, "empty: no samples left after resampling")
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        x = x / peak
    return normalize_audio(x, normalize)


def normalize_audio(x: np.ndarray, mode: str) -> np.ndarray:
    """float32 [N]: "none", "peak" (peak 0.95) or "rms" (RMS 0.05, then peak-limited to 0.95)."""
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {mode!r}")
    if mode == "none":
        return x
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < 1e-6:
        return x
    if mode == "peak":
        return (x * (PEAK_TARGET / peak)).astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = min(RMS_TARGET / rms, PEAK_TARGET / peak)
    return (x * gain).astype(np.float32)


def load_audio(path: str, normalize: str = "none") -> np.ndarray:
    """Read wav/flac/mp3/ogg at `path` as float32 [N] mono 16 kHz; AudioError on any problem."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(path, "unreadable: no such file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "unreadable: permission denied")
    try:
        trunc = _wav_truncated(path)
    except OSError as e:
        raise AudioError(path, f"unreadable: {e}") from e
    if trunc:
        raise AudioError(path, trunc)
    try:
        x, rate = sf.read(path, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise AudioError(path, f"undecodable: {e}") from e
    return condition(x, rate, path, normalize)
