"""Random-access sources of standard utterances, named by a spec string.

Specs (docs/internals.md): `corpus:DIR` (the built-in corpus), `folder:DIR` (audio files with
LibriSpeech / LibriTTS / plain layouts), `tfds:NAME@DATA_DIR` (a prepared TFDS dataset with an
audio feature; `@DATA_DIR` optional). A record is
  {"id": str, "audio": float32 [N] 16 kHz mono in [-1, 1], "text": str, "phonemes": str,
   "speaker": str, ...extra labels}
A bad item raises `data.audio.AudioError` naming the file or record. Sources are picklable (Grain
worker processes) and open their files lazily.
"""
from __future__ import annotations

import abc
import hashlib
import os
import re
from collections.abc import Iterable, Iterator

import numpy as np
import tqdm
from absl import logging

from speechvae_jax.data import audio as audio_lib

CORPUS_NAME = "speechvae_corpus"  # the TFDS name of the built-in corpus (speechvae_jax.corpus)
SPLIT_FRACTIONS = {"train": 0.90, "valid": 0.05, "test": 0.05}  # folders without split dirs
_LIBRI_ID = re.compile(r"^(\d+)[-_](\d+)[-_]\d+")
_TEXT_KEYS = ("text", "transcript", "normalized_text", "sentence", "transcription")
_SPEAKER_KEYS = ("speaker", "speaker_id", "client_id")
_ID_KEYS = ("id", "segment_id", "file_name", "audio_id", "key")
_AUDIO_KEYS = ("audio", "speech", "waveform")


class UtteranceSource(abc.ABC):
    """Grain random-access source (`__len__`, `__getitem__`) of standard utterances."""

    spec: str
    split: str

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def __getitem__(self, index: int) -> dict:
        """The standard utterance record of item `index` (raises AudioError for a bad item)."""

    def item_name(self, index: int) -> str:
        """A name for item `index` (file path or record id) for error reports, without decoding."""
        return f"{self.spec}[{self.split}][{index}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, split={self.split!r}, n={len(self)})"


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _text(value.item())
    return str(value)


def _tfds_info(name: str, data_dir: str | None, spec: str):
    import tensorflow_datasets as tfds
    try:
        return tfds.builder(name, data_dir=data_dir).info
    except Exception as e:  # tfds raises many types for missing / unreadable datasets
        raise FileNotFoundError(f"{spec}: cannot open TFDS dataset {name!r} in "
                                f"{data_dir or 'the default data dir'}: {e}") from e


class TfdsSource(UtteranceSource):
    """A prepared TFDS dataset read with `tfds.data_source`; the audio key is found by name/type."""

    def __init__(self, name: str, split: str, data_dir: str | None, spec: str):
        self.name, self.split, self.data_dir, self.spec = name, split, data_dir, spec
        info = _tfds_info(name, data_dir, spec)
        if split not in info.splits:
            raise KeyError(f"{spec}: no split {split!r}; splits are {sorted(info.splits)}")
        self._len = info.splits[split].num_examples
        self.features = info.features
        self.audio_key = self._audio_key(info)
        feat = self.features[self.audio_key]
        rate = getattr(feat, "sample_rate", None) or (info.metadata or {}).get("sample_rate")
        if not rate:
            raise ValueError(f"{spec}: audio feature {self.audio_key!r} has no sample rate "
                             "(feature.sample_rate or metadata['sample_rate'])")
        self.rate = int(rate)
        self._ds = None

    def _audio_key(self, info) -> str:
        feats = info.features
        for key in _AUDIO_KEYS:
            if key in feats:
                return key
        for key, feat in feats.items():
            if type(feat).__name__ == "Audio" or (getattr(feat, "shape", None) == (None,)
                                                  and np.dtype(feat.np_dtype).kind in "iuf"):
                return key
        raise ValueError(f"{self.spec}: no audio feature among {sorted(feats)}")

    def __getstate__(self):
        return {**self.__dict__, "_ds": None}

    def _source(self):
        if self._ds is None:
            import tensorflow_datasets as tfds
            self._ds = tfds.data_source(self.name, split=self.split, data_dir=self.data_dir)
        return self._ds

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        try:
            raw = self._source()[index]
        except Exception as e:  # corrupt shards surface as assorted decode errors
            raise audio_lib.AudioError(self.item_name(index), f"unreadable: {e}") from e
        rid = next((_text(raw[k]) for k in _ID_KEYS if k in raw), f"{self.split}/{index}")
        x = audio_lib.condition(raw[self.audio_key], self.rate, f"{self.spec}:{rid}")
        rec = {"id": rid, "audio": x,
               "text": next((_text(raw[k]) for k in _TEXT_KEYS if k in raw), ""),
               "phonemes": _text(raw["phonemes"]) if "phonemes" in raw else "",
               "speaker": next((_text(raw[k]) for k in _SPEAKER_KEYS if k in raw), "")}
        for key, value in raw.items():
            if key in rec or key == self.audio_key or key in _ID_KEYS + _TEXT_KEYS + _SPEAKER_KEYS:
                continue
            feat = self.features[key]
            if hasattr(feat, "int2str") and np.ndim(value) == 0:
                rec[key] = feat.int2str(int(value))
            elif isinstance(value, (bytes, str)):
                rec[key] = _text(value)
            else:
                rec[key] = np.asarray(value)
        return rec


class CorpusSource(TfdsSource):
    """The built-in corpus (`corpus:DIR`); adds phoneme_starts/ends, keyword, engine, kind."""

    def __init__(self, directory: str, split: str, spec: str):
        if not os.path.isdir(os.path.join(directory, CORPUS_NAME)):
            raise FileNotFoundError(f"{spec}: no built corpus in {directory} "
                                    "(run `speechvae corpus --out DIR`)")
        super().__init__(CORPUS_NAME, split, directory, spec)


def _read_transcripts(root: str, files: list[str]) -> dict[str, str]:
    """Utterance stem -> transcript from LibriSpeech `*.trans.txt` and per-file text files."""
    texts: dict[str, str] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".trans.txt"):
                with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                    for line in f:
                        parts = line.strip().split(" ", 1)
                        if parts[0]:
                            texts[parts[0]] = parts[1] if len(parts) > 1 else ""
    for path in files:
        stem = os.path.splitext(path)[0]
        for suffix in (".normalized.txt", ".original.txt", ".txt", ".lab"):
            if os.path.exists(stem + suffix):
                with open(stem + suffix, encoding="utf-8", errors="replace") as f:
                    texts[os.path.basename(stem)] = " ".join(f.read().split())
                break
    return texts


def _in_split(key: str, split: str) -> bool:
    h = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    lo = 0.0
    for name, frac in SPLIT_FRACTIONS.items():
        if name == split:
            return lo <= h < lo + frac
        lo += frac
    return False


class FolderSource(UtteranceSource):
    """Audio files under a directory (wav/flac/mp3/ogg, sorted), with optional transcripts.

    Split selection: DIR/<split> if that directory exists (e.g. LibriSpeech `test-clean`);
    "all" for everything; otherwise "train"/"valid"/"test" take a stable 90/5/5 hash split by
    speaker for train vs. test and by utterance for valid (valid speakers are train speakers).
    Speaker: the leading number of LibriSpeech / LibriTTS ids, else the parent directory name.
    """

    def __init__(self, directory: str, split: str, spec: str):
        self.spec, self.split = spec, split
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{spec}: {directory} is not a directory")
        root = os.path.join(directory, split)
        whole = split == "all" or os.path.isdir(root)
        root = root if os.path.isdir(root) else directory
        self.root = os.path.abspath(root)
        if not whole and split not in SPLIT_FRACTIONS:
            raise KeyError(f"{spec}: split {split!r} is neither a subdirectory nor one of "
                           f"{['all', *SPLIT_FRACTIONS]}")
        files = sorted(
            os.path.join(dp, n) for dp, _, names in os.walk(self.root) for n in names
            if n.lower().endswith(audio_lib.AUDIO_EXTENSIONS))
        texts = _read_transcripts(self.root, files)
        stems = [os.path.splitext(os.path.basename(p))[0] for p in files]
        unique = len(set(stems)) == len(stems)
        items = []
        for path, stem in zip(files, stems):
            rel = os.path.relpath(path, self.root)
            uid = stem if unique else os.path.splitext(rel)[0]
            m = _LIBRI_ID.match(stem)
            parent = os.path.dirname(rel)
            speaker = m.group(1) if m else (parent.split(os.sep)[0] if parent else "unknown")
            if not whole:
                held_out = _in_split(speaker, "test") if speaker != "unknown" else \
                    _in_split(uid, "test")
                if split == "test" and not held_out:
                    continue
                if split != "test" and (held_out or _in_split(uid, "valid") != (split == "valid")):
                    continue
            items.append((path, uid, speaker, texts.get(stem, "")))
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def item_name(self, index: int) -> str:
        return self.items[int(index)][0]

    def __getitem__(self, index: int) -> dict:
        path, uid, speaker, text = self.items[int(index)]
        return {"id": uid, "audio": audio_lib.load_audio(path), "text": text, "phonemes": "",
                "speaker": speaker, "path": path}


def _parse(spec: str) -> tuple[str, str]:
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ValueError(f"bad data source spec {spec!r}: expected corpus:DIR, folder:DIR or "
                         "tfds:NAME@DATA_DIR")
    if kind not in ("corpus", "folder", "tfds"):
        raise ValueError(f"bad data source spec {spec!r}: unknown kind {kind!r} "
                         "(corpus, folder or tfds)")
    return kind, rest


def list_splits(spec: str) -> list[str]:
    """The splits of a source: TFDS / corpus splits, or ["all"] for a folder."""
    kind, rest = _parse(spec)
    if kind == "folder":
        return ["all"]
    if kind == "corpus":
        name, data_dir = CORPUS_NAME, os.path.abspath(os.path.expanduser(rest))
    else:
        name, _, data_dir = rest.partition("@")
        data_dir = os.path.expanduser(data_dir) if data_dir else None
    return sorted(_tfds_info(name, data_dir, spec).splits)


def read_item(source: UtteranceSource, index: int, skips: audio_lib.SkipLog) -> dict | None:
    """The record at `index`, or None after counting and logging it in `skips` when it is unreadable."""
    try:
        return source[int(index)]
    except audio_lib.AudioError as e:
        skips.add(e)
        return None


def read_items(source: UtteranceSource, indices: Iterable[int], skips: audio_lib.SkipLog,
               ) -> Iterator[tuple[int, dict]]:
    """(index, record) of each readable item at `indices`, in order; bad items go to `skips`."""
    for index in indices:
        rec = read_item(source, index, skips)
        if rec is not None:
            yield int(index), rec


def read_records(spec: str, split: str, limit: int | None = None, *, progress: bool = False,
                 ) -> tuple[list[dict], dict]:
    """Up to `limit` readable records of `spec[split]` (all when None), evenly spaced over the source
    order (deterministic); unreadable ones are skipped, counted and summarised in the log.

    Returns (records, {"split", "available", "selected", "skipped", "skip_reasons"}).
    """
    source = open_source(spec, split)
    n = len(source)
    count = n if limit is None else min(limit, n)
    index = np.unique(np.linspace(0, n - 1, count).round().astype(int)) if count else np.zeros(0, int)
    skips = audio_lib.SkipLog(f"{spec}[{split}]")
    if progress:
        index = tqdm.tqdm(index, desc=f"reading {split}", unit="utt", leave=False)
    records = [rec for _, rec in read_items(source, index, skips)]
    if len(skips):
        logging.warning(skips.summary())
    return records, {"split": split, "available": n, "selected": len(records), "skipped": len(skips),
                     "skip_reasons": [str(e) for e in skips.errors]}


class EmptySelection(ValueError):
    """A source and split that select no utterances (the message lists the splits' sizes)."""


def default_split(spec: str) -> str:
    """The split commands use when none is given: a whole folder ("all"), else "test"."""
    return "all" if _parse(spec)[0] == "folder" else "test"


def split_sizes(spec: str) -> dict[str, int]:
    """{split: number of items} of a source (a folder: all, train, valid, test)."""
    splits = ["all", *SPLIT_FRACTIONS] if _parse(spec)[0] == "folder" else list_splits(spec)
    return {s: len(open_source(spec, s)) for s in splits}


def open_nonempty(spec: str, split: str) -> UtteranceSource:
    """`open_source`, or EmptySelection naming the source, the split and every split's size."""
    source = open_source(spec, split)
    if len(source) == 0:
        sizes = ", ".join(f"{k}={v}" for k, v in split_sizes(spec).items())
        raise EmptySelection(f"{spec} split {split!r} selects no utterances (split sizes: {sizes}); "
                             "choose another --split")
    return source


def open_source(spec: str, split: str) -> UtteranceSource:
    """Open `corpus:DIR`, `folder:DIR` or `tfds:NAME[@DATA_DIR]` for `split`."""
    kind, rest = _parse(spec)
    if kind == "corpus":
        return CorpusSource(os.path.abspath(os.path.expanduser(rest)), split, spec)
    if kind == "folder":
        return FolderSource(os.path.abspath(os.path.expanduser(rest)), split, spec)
    name, _, data_dir = rest.partition("@")
    return TfdsSource(name, split, os.path.expanduser(data_dir) if data_dir else None, spec)
