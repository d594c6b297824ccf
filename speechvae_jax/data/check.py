"""`speechvae data check SOURCE`: scan every item of a source and report what is usable."""
from __future__ import annotations

import collections
import dataclasses

import numpy as np
import soundfile as sf
import tqdm

from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data import sources


@dataclasses.dataclass
class SplitReport:
    """Counts for one split; durations in seconds at 16 kHz; rates are the files' own rates."""
    split: str
    items: int = 0
    durations: list[float] = dataclasses.field(default_factory=list)
    rates: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    speakers: set = dataclasses.field(default_factory=set)
    with_text: int = 0
    skips: audio_lib.SkipLog = dataclasses.field(default_factory=audio_lib.SkipLog)


@dataclasses.dataclass
class Report:
    spec: str
    splits: list[SplitReport]

    @property
    def problems(self) -> int:
        return sum(len(s.skips) for s in self.splits)

    def format(self) -> str:
        lines = [f"data check: {self.spec}"]
        for s in self.splits:
            d = np.asarray(s.durations) if s.durations else np.zeros(1)
            rates = ", ".join(f"{r} Hz x{n}" for r, n in sorted(s.rates.items()))
            lines += [
                f"[{s.split}] items {s.items}, usable {len(s.durations)}, "
                f"problems {len(s.skips)}",
                f"  duration {d.sum() / 3600:.3f} h (min {d.min():.2f} s, mean {d.mean():.2f} s, "
                f"max {d.max():.2f} s)",
                f"  sample rates: {rates or 'n/a'}; speakers {len(s.speakers)}; "
                f"with transcript {s.with_text}",
            ]
            if len(s.skips):
                lines.append("  problems by kind: " + ", ".join(
                    f"{k} {n}" for k, n in sorted(s.skips.counts().items())))
                lines += [f"    {e.where}: {e.reason}" for e in s.skips.errors]
        lines.append(f"total problems: {self.problems}")
        return "\n".join(lines)


def _native_rate(src: sources.UtteranceSource, index: int) -> int | None:
    if isinstance(src, sources.FolderSource):
        try:
            return sf.info(src.item_name(index)).samplerate
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None
    return getattr(src, "rate", None)


def check_source(spec: str, splits: list[str] | None = None) -> Report:
    """Read every item of `spec` (all its splits unless given) and collect a Report."""
    report = Report(spec, [])
    for split in splits or sources.list_splits(spec):
        src = sources.open_source(spec, split)
        rep = SplitReport(split, items=len(src), skips=audio_lib.SkipLog(f"{spec} [{split}]"))
        for i, rec in sources.read_items(src, tqdm.trange(len(src), desc=f"checking {split}", unit="item"),
                                         rep.skips):
            rate = _native_rate(src, i)
            if rate:
                rep.rates[rate] += 1
            rep.durations.append(rec["audio"].size / audio_lib.SAMPLE_RATE)
            rep.speakers.add(rec["speaker"])
            rep.with_text += bool(rec["text"])
        report.splits.append(rep)
    return report
