"""Which utterances an evaluation reads: selections of sources, read once per process, with G2P
phonemes for transcripts, and the seeded per-speaker split of speaker identification."""
from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Sequence

import numpy as np
from absl import logging

from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data import sources
from speechvae_jax.data.base import UtteranceSource
from speechvae_jax.evaluate import g2p


@dataclasses.dataclass(frozen=True)
class Selection:
    """Up to `limit` utterances (None = all) of `spec[split]`, chosen by `data.sources.source_indices`."""
    spec: str
    split: str
    limit: int | None
    selection: str = "even"
    seed: int = 0
    balance_by: str = ""

    @property
    def name(self) -> str:
        return f"{self.spec}[{self.split}]@{'all' if self.limit is None else self.limit}"

    def digest(self) -> str:
        """A short hash naming the selection (export folders)."""
        return hashlib.sha256(repr(dataclasses.astuple(self)).encode()).hexdigest()[:8]


class Subset(UtteranceSource):
    """The items `indices` of a source, in that order (what an export of a selection reads)."""

    def __init__(self, source: UtteranceSource, indices: Sequence[int]):
        self.source, self.indices = source, [int(i) for i in indices]
        self.spec, self.split = source.spec, source.split

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.source[self.indices[int(index)]]

    def item_name(self, index: int) -> str:
        return self.source.item_name(self.indices[int(index)])


def ids_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


class Datasets:
    """Selections opened and read at most once per process. Records of sources without phonemes
    get espeak-ng G2P phonemes from their transcripts (cached in `g2p_dir`)."""

    def __init__(self, g2p_dir: str, g2p_voice: str = "en-us"):
        self.g2p_dir, self.g2p_voice = g2p_dir, g2p_voice
        self._indices: dict[Selection, tuple[UtteranceSource, np.ndarray]] = {}
        self._records: dict[Selection, tuple[list[dict], dict]] = {}

    def indices(self, sel: Selection) -> tuple[UtteranceSource, np.ndarray]:
        """(the opened source, the selected indices); nothing is decoded. Raises FileNotFoundError,
        KeyError or ValueError when the source or split does not exist."""
        if sel not in self._indices:
            source = sources.open_source(sel.spec, sel.split)
            self._indices[sel] = (source, sources.source_indices(source, sel.limit, sel.selection, sel.seed,
                                                                 sel.balance_by))
        return self._indices[sel]

    def read(self, sel: Selection, positions: Sequence[int] | None = None) -> tuple[list[dict], dict]:
        """Readable records of the selection (or of its `positions` only: a chunk), G2P filled.

        Returns (records, {"split", "available", "selected", "skipped", "skip_reasons", "ids_sha256_16",
        "g2p"}); unreadable items are skipped and counted."""
        if positions is None and sel in self._records:
            return self._records[sel]
        source, index = self.indices(sel)
        chosen = index if positions is None else index[np.asarray(positions, int)]
        skips = audio_lib.SkipLog(f"{sel.spec}[{sel.split}]")
        records = [rec for _, rec in sources.read_items(source, chosen, skips)]
        if len(skips):
            logging.warning(skips.summary())
        info = {"split": sel.split, "available": len(source), "selected": len(records), "skipped": len(skips),
                "skip_reasons": [str(e) for e in skips.errors], "ids_sha256_16": ids_hash([r["id"] for r in records]),
                "g2p": g2p.phonemize_records(records, self.g2p_dir, self.g2p_voice)}
        if positions is None:
            self._records[sel] = (records, info)
        return records, info


def speaker_split(records: list[dict], test_fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split utterances per speaker: of each speaker with n >= 2 utterances, round(test_fraction * n)
    (at least 1, at most n - 1) seeded-random ones go to test, the rest to train; speakers with one
    utterance stay in train. Order within each part follows `records`."""
    by_speaker: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        by_speaker.setdefault(str(rec.get("speaker", "")), []).append(i)
    test = set()
    for speaker, idx in sorted(by_speaker.items()):
        if len(idx) < 2:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(speaker.encode())])
        n_test = min(len(idx) - 1, max(1, int(round(test_fraction * len(idx)))))
        test.update(np.asarray(idx)[rng.permutation(len(idx))[:n_test]].tolist())
    return ([r for i, r in enumerate(records) if i not in test], [r for i, r in enumerate(records) if i in test])
