"""Teacher feature cache: full-utterance hidden states in ArrayRecord, keyed by utterance id.

Layout of a cache directory:
- `features.array_record` (one process) or `features-<p>-of-<P>.array_record` (process p of P, which
  computed utterances p, p + P, ...): one record per utterance, msgpack `{"id": str, "features": [K, T, D]}`
  (K = number of cached layers, T = teacher frames of the whole utterance at the teacher rate);
- `cache.json`: the identity `{"teacher": hash, "layers": [...], "frame_rate", "hop",
  "receptive_field"}` plus `data`, `split`, `dtype`, `ids` (all, shard by shard), `shards` (`[{"file",
  "ids"}]` in record order), `skipped`, `complete`.
The directory may be an object-store prefix (gs://...): shards are written locally and uploaded whole,
and read from local copies (fileio.cached_copy). Readers name the identity they expect and a mismatch
is refused. Training crops the cached frames
consistently with its audio crop (`crop_features`), so the cache does not depend on crop choices.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np
from absl import logging
from flax import serialization
from jax.experimental import multihost_utils
from tqdm import tqdm

from speechvae_jax import fileio
from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data import pipeline, sources
from speechvae_jax.teachers.store import Teacher, load_teacher

RECORDS_FILE = "features.array_record"
META_FILE = "cache.json"
IDENTITY_KEYS = ("teacher", "layers", "frame_rate", "hop", "receptive_field")


def cache_identity(teacher: Teacher, layers: int | Sequence[int] | None = None) -> dict:
    """What a cache must match: teacher hash, cached layer indices and frame geometry."""
    if layers is None:
        layers = [teacher.default_layer]
    elif isinstance(layers, (int, np.integer)):
        layers = [int(layers)]
    n = teacher.config.num_hidden_layers + 1
    layers = [int(layer) % n if -n <= int(layer) < n else int(layer) for layer in layers]
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad or not layers:
        raise ValueError(f"cache layers {bad or layers} out of range 0..{n - 1}")
    return {"teacher": teacher.identity, "layers": layers, "frame_rate": teacher.frame_rate,
            "hop": teacher.hop, "receptive_field": teacher.receptive_field}


def check_identity(found: dict, expected: dict, where: str) -> None:
    """Raise ValueError naming every identity field where `found` differs from `expected`."""
    diffs = [f"{k}: cache has {found.get(k)!r}, expected {expected[k]!r}"
             for k in IDENTITY_KEYS if k in expected and found.get(k) != expected[k]]
    if diffs:
        raise ValueError(f"{where}: teacher feature cache does not match ({'; '.join(diffs)})")


def _batches(teacher: Teacher, data_spec: str, split: str, batch_size: int, skips, pi: int, pc: int):
    """This process's padded batches for layer-norm teachers; exact-length single utterances for
    group-norm ones (their first conv normalises over the whole input, padding included)."""
    source = sources.open_nonempty(data_spec, split)
    if teacher.config.feat_extract_norm == "group":
        batch_size, bucket = 1, 1
    else:
        bucket = 16000
    return pipeline.utterance_batches(source, batch_size=batch_size, bucket_samples=bucket, skips=skips,
                                      process_index=pi, process_count=pc)


def _shard_file(pi: int, pc: int) -> str:
    return RECORDS_FILE if pc == 1 else f"features-{pi:05d}-of-{pc:05d}.array_record"


def _write_shard(teacher: Teacher, layers: list[int], data_spec: str, split: str, path: str, *,
                 batch_size: int, dtype: str, pi: int, pc: int) -> tuple[list[str], int]:
    """Write this process's utterances (p, p + P, ...) to `path` -> (ids in record order, skipped count)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    skips = audio_lib.SkipLog(f"{data_spec}[{split}]")
    staged = fileio.staging_path(path, f"p{pi}")
    writer = ArrayRecordWriter(staged, "group_size:1")
    ids: list[str] = []
    with tqdm(desc=f"teacher cache {split}" + (f" p{pi}" if pc > 1 else ""), unit="utt") as bar:
        for batch in _batches(teacher, data_spec, split, batch_size, skips, pi, pc):
            hidden = teacher.hidden_states(batch["audio"], batch["mask"])
            chosen = np.stack([np.asarray(hidden[layer]) for layer in layers], axis=1)  # [b,K,T,D]
            lengths = batch["mask"].sum(1).astype(int)
            for row, uid, n in zip(chosen, batch["ids"], lengths):
                feats = row[:, :teacher.config.num_frames(int(n))].astype(dtype)
                writer.write(serialization.msgpack_serialize({"id": uid, "features": feats}))
                ids.append(uid)
            bar.update(len(batch["ids"]))
    writer.close()
    fileio.publish(staged, path)
    if len(skips):
        logging.warning(skips.summary())
    return ids, len(skips)


def _sync(pc: int, what: str) -> None:
    if pc > 1:
        multihost_utils.sync_global_devices(what)


def build_cache(teacher_path: str, data_spec: str, split: str, out_dir: str, layers=None, *,
                batch_size: int = 8, dtype: str = "float32") -> str:
    """Compute and store the teacher's `layers` (default: its default layer) for every utterance of
    `data_spec[split]`. A complete cache with the same identity is kept; a different one is refused.
    With several processes each computes its share (utterances p, p + P, ...) into its own shard."""
    if dtype not in ("float32", "float16"):
        raise ValueError(f"cache dtype {dtype!r}: use float32 or float16")
    out_dir = os.fspath(fileio.as_path(out_dir))
    teacher = load_teacher(teacher_path)
    identity = cache_identity(teacher, layers)
    meta_path = os.path.join(out_dir, META_FILE)
    if fileio.exists(meta_path):
        meta = fileio.read_json(meta_path)
        check_identity(meta, identity, out_dir)
        if meta.get("complete") and meta.get("data") == data_spec and meta.get("split") == split:
            logging.info("feature cache %s is complete; keeping it", out_dir)
            return out_dir
        if meta.get("data") != data_spec or meta.get("split") != split:
            raise ValueError(f"{out_dir}: holds a cache of {meta.get('data')}[{meta.get('split')}], "
                             f"not {data_spec}[{split}]; use another --out")
    fileio.ensure_writable(out_dir)
    pi, pc = jax.process_index(), jax.process_count()
    shard = _shard_file(pi, pc)
    ids, skipped = _write_shard(teacher, identity["layers"], data_spec, split, os.path.join(out_dir, shard),
                                batch_size=batch_size, dtype=dtype, pi=pi, pc=pc)
    part = os.path.join(out_dir, f"part-{pi:05d}-of-{pc:05d}.json")
    fileio.atomic_write_json(part, {"file": shard, "ids": ids, "skipped": skipped})
    _sync(pc, "speechvae teacher cache: all shards written")
    if pi == 0:
        parts = [os.path.join(out_dir, f"part-{p:05d}-of-{pc:05d}.json") for p in range(pc)]
        shards = [fileio.read_json(path) for path in parts]
        all_ids = [uid for sh in shards for uid in sh["ids"]]
        if len(set(all_ids)) != len(all_ids):
            raise ValueError(f"{data_spec}[{split}]: duplicate utterance ids; the cache needs unique ids")
        meta = {**identity, "data": data_spec, "split": split, "dtype": dtype, "ids": all_ids,
                "shards": [{"file": sh["file"], "ids": sh["ids"]} for sh in shards],
                "skipped": sum(sh["skipped"] for sh in shards), "complete": True}
        fileio.atomic_write_json(meta_path, meta)
        for path in parts:
            fileio.as_path(path).unlink()
        print(f"teacher feature cache: {len(all_ids)} utterances ({meta['skipped']} skipped) -> {out_dir}")
    _sync(pc, "speechvae teacher cache: cache.json written")
    return out_dir


class FeatureCache:
    """Reader of a cache directory. `expect_identity` (see `cache_identity`) is checked on open."""

    def __init__(self, directory: str, expect_identity: dict | None = None):
        meta_path = os.path.join(directory, META_FILE)
        if not fileio.exists(meta_path):
            raise FileNotFoundError(f"{directory}: no {META_FILE}; build it with `speechvae teacher cache`")
        self.meta = fileio.read_json(meta_path)
        if not self.meta.get("complete"):
            raise ValueError(f"{directory}: the feature cache is incomplete; rebuild it")
        if expect_identity is not None:
            check_identity(self.meta, expect_identity, directory)
        self.directory = directory
        self.identity = {k: self.meta[k] for k in IDENTITY_KEYS}
        self.ids = list(self.meta["ids"])
        shards = self.meta.get("shards") or [{"file": RECORDS_FILE, "ids": self.ids}]
        self._files = [sh["file"] for sh in shards]
        self._where = {uid: (k, i) for k, sh in enumerate(shards) for i, uid in enumerate(sh["ids"])}
        self._readers: dict = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, uid: str) -> bool:
        return uid in self._where

    def _records(self, k: int):
        if k not in self._readers:
            from array_record.python.array_record_module import ArrayRecordReader
            local = fileio.cached_copy(os.path.join(self.directory, self._files[k]))
            self._readers[k] = ArrayRecordReader(local)
        return self._readers[k]

    def lookup(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Features [K, T, D] (float32) of each utterance id; an unknown id is a KeyError naming it."""
        missing = [uid for uid in ids if uid not in self._where]
        if missing:
            raise KeyError(f"{self.directory}: no cached features for ids {missing[:5]}")
        out = []
        for uid in ids:
            k, i = self._where[uid]
            rec = serialization.msgpack_restore(self._records(k).read([i])[0])
            if rec["id"] != uid:
                raise ValueError(f"{self.directory}: record for {uid!r} holds {rec['id']!r}; the cache is corrupt")
            out.append(np.asarray(rec["features"], np.float32))
        return out

    def __getstate__(self):  # picklable for Grain workers: reopen lazily
        return {**self.__dict__, "_readers": {}}


def crop_features(features: np.ndarray, sample_offset: int, num_samples: int, hop: int = 320,
                  receptive_field: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Teacher frames [..., T', D] for the audio crop [sample_offset, sample_offset + num_samples)
    of the utterance whose full features are `features` [..., T, D], and their mask [T'] (bool).

    T' = floor((num_samples - receptive_field) / hop) + 1 (what the teacher gives for the crop);
    crop frame i is full frame round(sample_offset / hop) + i, exact when the offset is a multiple
    of `hop`. Frames past the end of the utterance are zeros with mask False."""
    t_crop = max((num_samples - receptive_field) // hop + 1, 0)
    start = int(round(sample_offset / hop))
    piece = features[..., start:start + t_crop, :]
    n = piece.shape[-2]
    out = np.zeros(features.shape[:-2] + (t_crop, features.shape[-1]), np.float32)
    out[..., :n, :] = piece
    return out, np.arange(t_crop) < n


class CachedTargets:
    """Cached teacher frames that follow a training crop (what `data.pipeline.train_dataset` takes
    as `features`). `layers` are teacher hidden-state indices, all in the cache; `crop` returns
    {"teacher": [len(layers), T', D] float32} for a crop starting at a multiple of the teacher hop
    (frames past the utterance are zeros; the crop's sample mask already marks them). Picklable for
    Grain workers."""

    def __init__(self, directory: str, teacher: Teacher, layers: Sequence[int]):
        self.cache = FeatureCache(directory, expect_identity={
            k: v for k, v in cache_identity(teacher, list(layers)).items() if k != "layers"})
        n = teacher.config.num_hidden_layers + 1
        cached = list(self.cache.meta["layers"])
        wanted = [int(layer) % n for layer in layers]
        missing = [layer for layer in wanted if layer not in cached]
        if missing:
            raise ValueError(f"{directory}: teacher layers {missing} are not cached (cached: {cached}); "
                             "rebuild with `speechvae teacher cache` for those layers")
        self.rows = [cached.index(layer) for layer in wanted]
        self.hop, self.receptive_field = teacher.hop, teacher.receptive_field

    def crop(self, record: dict, sample_offset: int, num_samples: int, rng=None) -> dict[str, np.ndarray]:
        feats = self.cache.lookup([record["id"]])[0][self.rows]
        out, _ = crop_features(feats, sample_offset, num_samples, self.hop, self.receptive_field)
        return {"teacher": out}
