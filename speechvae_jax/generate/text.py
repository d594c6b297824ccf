"""Text units and how they are laid out on the latent frame grid.

Two conditioning modes (config `text.mode`):
  "filler"   the unit sequence (characters or phonemes) followed by FILLER tokens up to the frame
             count, as F5-TTS; the model learns the alignment.
  "aligned"  every frame carries the phoneme spoken in it (from the corpus timings), SILENCE where
             none is; the alignment is given.
Token ids: FILLER (0, also the whole row when text is dropped for guidance), SILENCE (1), UNKNOWN
(2), then the vocabulary's symbols.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

FILLER, SILENCE, UNKNOWN = 0, 1, 2
RESERVED = 3
CHARACTERS = tuple("abcdefghijklmnopqrstuvwxyz' ,.?!-")
MODES = ("filler", "aligned")
UNITS = ("chars", "phonemes")


def normalize_chars(text: str) -> str:
    """Lower case, runs of whitespace collapsed to one space, stripped."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def units_of(record: dict, units: str) -> list[str]:
    """The unit sequence of a record with `text` / `phonemes`: its characters or its phonemes."""
    if units == "chars":
        return list(normalize_chars(record["text"]))
    if units == "phonemes":
        return record["phonemes"].split()
    raise ValueError(f"text.units must be one of {UNITS}, got {units!r}")


class Vocab:
    """Symbols -> token ids (RESERVED + position in `symbols`; unknown symbols -> UNKNOWN)."""

    def __init__(self, symbols: Sequence[str]):
        if len(set(symbols)) != len(symbols):
            raise ValueError("vocabulary symbols must be distinct")
        self.symbols = tuple(symbols)
        self._ids = {s: RESERVED + i for i, s in enumerate(self.symbols)}

    @property
    def size(self) -> int:
        """Number of token ids, reserved ones included (the embedding table's rows)."""
        return RESERVED + len(self.symbols)

    def encode(self, units: Iterable[str]) -> np.ndarray:
        """units -> int32 [P]."""
        return np.asarray([self._ids.get(u, UNKNOWN) for u in units], np.int32).reshape(-1)

    @classmethod
    def from_records(cls, records: Iterable[dict], units: str) -> Vocab:
        """The sorted set of units in `records` (phonemes); characters use the fixed CHARACTERS."""
        if units == "chars":
            return cls(CHARACTERS)
        return cls(sorted({u for r in records for u in units_of(r, units)}))


def filler_tokens(ids: np.ndarray, num_frames: int) -> np.ndarray:
    """int [P] -> int32 [T]: the ids, then FILLER up to T frames (P <= T)."""
    if len(ids) > num_frames:
        raise ValueError(f"{len(ids)} text units do not fit in {num_frames} frames")
    out = np.full(num_frames, FILLER, np.int32)
    out[: len(ids)] = ids
    return out


def aligned_tokens(ids: np.ndarray, start_frames: np.ndarray, end_frames: np.ndarray,
                   num_frames: int) -> np.ndarray:
    """Phoneme ids [P] with frame spans [P] (end exclusive) -> int32 [T]; SILENCE outside every span.

    Where spans overlap (a short phoneme rounded onto its neighbour's frame) the later one wins.
    """
    if not len(ids) == len(start_frames) == len(end_frames):
        raise ValueError(f"{len(ids)} phonemes but {len(start_frames)} starts and {len(end_frames)} ends")
    out = np.full(num_frames, SILENCE, np.int32)
    for token, s, e in zip(ids, start_frames, end_frames):
        out[max(int(s), 0):min(int(e), num_frames)] = token
    return out


def frames_from_rate(prompt_frames: int, prompt_units: int, target_units: int) -> int:
    """Frames of the target at the prompt's speaking rate (frames per unit): F5-TTS's free-use rule."""
    if prompt_units <= 0:
        raise ValueError("the prompt needs a transcript to estimate a speaking rate")
    return max(1, round(prompt_frames * target_units / prompt_units))


def check_text_config(text_cfg) -> Vocab:
    """Validate the `text` config section; its vocabulary."""
    if text_cfg.mode not in MODES:
        raise ValueError(f"text.mode must be one of {MODES}, got {text_cfg.mode!r}")
    if text_cfg.units not in UNITS:
        raise ValueError(f"text.units must be one of {UNITS}, got {text_cfg.units!r}")
    if text_cfg.mode == "aligned" and text_cfg.units != "phonemes":
        raise ValueError("text.mode 'aligned' needs text.units 'phonemes' (timings are per phoneme)")
    if not text_cfg.symbols:
        raise ValueError("text.symbols is empty: a phoneme vocabulary comes from the training records")
    return Vocab(list(text_cfg.symbols))
