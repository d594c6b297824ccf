"""Grain pipelines: random fixed-length training crops, and padded full utterances for export/eval.

Training: all indices -> seeded shuffle, reshuffled every epoch -> repeat forever -> this process's
rows of every global batch -> read + normalise + random crop (seeded by the position in the global
stream, so independent of worker and process count) -> batch. Items whose audio is bad are skipped
(counted and logged).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import grain
import numpy as np
from absl import flags, logging
from ml_collections import ConfigDict

from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data import sources


def default_data_config() -> ConfigDict:
    """Data settings every run config starts from."""
    c = ConfigDict()
    c.source = "corpus:demo_out/corpus"  # corpus:DIR | folder:DIR | tfds:NAME@DATA_DIR
    c.train_split = "train"
    c.valid_split = "valid"
    c.sample_rate = audio_lib.SAMPLE_RATE
    c.crop_samples = 32768  # 2.048 s (paper scale)
    c.num_workers = 0  # Grain worker processes (0 = read in the main process)
    c.read_threads = 2  # threads reading records per process
    c.normalize = "peak"  # "none" | "peak" | "rms"
    c.min_samples = 1600  # shorter utterances (0.1 s) are skipped as "too short"
    c.max_skip_ratio = 0.5  # stop with an error if more of any 1000 items read are bad
    c.speed_perturb = 0.0  # training crops played 2**(u/12) times faster, u ~ U[-s, s] semitones (0 = off)
    return c


def _check_cfg(cfg: ConfigDict) -> None:
    if cfg.sample_rate != audio_lib.SAMPLE_RATE:
        raise ValueError(f"data.sample_rate must be {audio_lib.SAMPLE_RATE}, got {cfg.sample_rate}")
    if cfg.crop_samples <= 0:
        raise ValueError(f"data.crop_samples must be positive, got {cfg.crop_samples}")
    audio_lib.normalize_audio(np.zeros(1, np.float32), cfg.normalize)
    if not 0 <= cfg.get("speed_perturb", 0.0) <= 12:
        raise ValueError(f"data.speed_perturb must be in [0, 12] semitones, got {cfg.speed_perturb}")


class _Reader:
    """Reads index -> conditioned record; bad items -> None plus a SkipLog entry (picklable)."""

    def __init__(self, source: sources.UtteranceSource, normalize: str, min_samples: int,
                 skips: audio_lib.SkipLog):
        self.source, self.normalize, self.min_samples = source, normalize, min_samples
        self.skips = skips

    def __call__(self, index: int) -> dict | None:
        rec = sources.read_item(self.source, index, self.skips)
        if rec is None:
            return None
        if rec["audio"].size < self.min_samples:
            self.skips.add(audio_lib.AudioError(rec["id"], f"too short: {rec['audio'].size} samples "
                                                           f"< {self.min_samples}"))
            return None
        rec["audio"] = audio_lib.normalize_audio(rec["audio"], self.normalize)
        return rec


def crop_start(n: int, crop_samples: int, rng: np.random.Generator, multiple: int = 1) -> int:
    """A random crop start in [0, n - crop_samples], a multiple of `multiple` (0 for short clips)."""
    if n <= crop_samples:
        return 0
    return int(rng.integers(0, (n - crop_samples) // multiple + 1)) * multiple


def crop(x: np.ndarray, crop_samples: int, rng: np.random.Generator, multiple: int = 1,
         ) -> tuple[np.ndarray, np.ndarray]:
    """Random crop of float32 [N] to [crop_samples]; short clips are right-padded.

    Returns (audio [crop_samples], mask [crop_samples]) with mask 1.0 on real samples.
    """
    return cut(x, crop_start(x.size, crop_samples, rng, multiple), crop_samples)


def speed_crop(x: np.ndarray, crop_samples: int, rng: np.random.Generator, semitones: float,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Random crop of float32 [N] played r = 2**(u/12) times faster, u ~ U[-semitones, semitones].

    About crop_samples * r samples are cut and resampled to [crop_samples], so f0 and formants are
    multiplied by r. Returns (audio, mask) as `crop` does, the mask covering the resampled real samples.
    """
    r = 2.0 ** (rng.uniform(-semitones, semitones) / 12.0)
    piece, mask = crop(x, int(np.ceil(crop_samples * r)), rng)
    return cut(audio_lib.change_speed(piece[:int(mask.sum())], r), 0, crop_samples)


def cut(x: np.ndarray, start: int, crop_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """x[start:start + crop_samples] right-padded with zeros, and its mask (1.0 = real sample)."""
    piece = x[start:start + crop_samples].astype(np.float32)
    out = np.zeros(crop_samples, np.float32)
    mask = np.zeros(crop_samples, np.float32)
    out[:piece.size] = piece
    mask[:piece.size] = 1.0
    return out, mask


def _stack(items: list[dict]) -> dict:
    return {k: np.stack([i[k] for i in items]) for k in items[0]}


class _BatchRows(grain.MapDataset):
    """One process's rows of every global batch of an endless stream: element j is the stream's element
    (j // local) * global_batch + offset + j % local (rows [offset, offset + local) of batch j // local).
    With one process it is the stream itself."""

    def __init__(self, parent: grain.MapDataset, global_batch: int, offset: int, local: int):
        super().__init__(parent)
        self._global, self._offset, self._local = global_batch, offset, local

    def __len__(self) -> int:
        return len(self._parent)

    def __str__(self) -> str:
        return f"_BatchRows(global_batch={self._global}, offset={self._offset}, local={self._local})"

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, row = divmod(index, self._local)
        return self._parent[batch * self._global + self._offset + row]


def _ensure_flags_parsed() -> None:
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def train_dataset(data_cfg: ConfigDict, *, global_batch_size: int, seed: int,
                  process_index: int, process_count: int, features=None) -> grain.IterDataset:
    """Endless per-process batches {"audio", "mask": float32 [b, crop_samples]}.

    `features` (optional; teachers.cache.CachedTargets, pretrain's cluster targets): crops then start at
    multiples of `features.hop` and each item also gets `features.crop(record, start, crop_samples, rng)`
    (a dict of arrays, stacked into the batch; rng is the item's own generator), so per-utterance
    targets follow the audio crop.

    b = global_batch_size / process_count. The global stream (every item of the split once per epoch,
    reshuffled each epoch with `seed`) is cut into global batches, and process i reads rows
    [i*b, (i+1)*b) of each (disjoint, complete): the P processes' batches put together are the one-process
    batches, crop for crop, whatever P (when no item is skipped; a skipped item is replaced by the
    process's next one). The iterator's get_state() is JSON-serialisable and set_state() reproduces the
    exact next batches (with the same process count).
    The dataset's `.skips` (a SkipLog) lists bad items met by this process's readers.
    """
    _check_cfg(data_cfg)
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} not divisible by {process_count} "
                         "processes")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} outside [0, {process_count})")
    source = sources.open_source(data_cfg.source, data_cfg.train_split)
    if len(source) < process_count:
        raise ValueError(f"{data_cfg.source} [{data_cfg.train_split}] has {len(source)} items, "
                         f"fewer than {process_count} processes")
    read = _Reader(source, data_cfg.normalize, int(data_cfg.get("min_samples", 1)),
                   audio_lib.SkipLog(f"{data_cfg.source} [{data_cfg.train_split}]"))
    crop_samples = int(data_cfg.crop_samples)
    semitones = float(data_cfg.get("speed_perturb", 0.0))
    if semitones and features is not None:
        raise ValueError("data.speed_perturb changes the audio under per-utterance targets "
                         "(teacher.cache_dir, cluster targets): set data.speed_perturb=0 or drop the cache")

    def load_and_crop(index, rng: np.random.Generator):
        rec = read(index)
        if rec is None:
            return None
        if features is None:
            if semitones:
                audio, mask = speed_crop(rec["audio"], crop_samples, rng, semitones)
            else:
                audio, mask = crop(rec["audio"], crop_samples, rng)
            return {"audio": audio, "mask": mask}
        start = crop_start(rec["audio"].size, crop_samples, rng, features.hop)
        audio, mask = cut(rec["audio"], start, crop_samples)
        return {"audio": audio, "mask": mask, **features.crop(rec, start, crop_samples, rng)}

    local = global_batch_size // process_count
    # The global stream (shuffled anew each epoch, crops seeded by stream position) is the same for any
    # process count; each process reads only its rows of every global batch.
    ds = grain.MapDataset.range(len(source)).shuffle(seed=seed).repeat(None).random_map(load_and_crop, seed=seed)
    ds = _BatchRows(ds, global_batch_size, process_index * local, local)
    threads = int(data_cfg.get("read_threads", 2))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=threads,
                                              prefetch_buffer_size=max(2, 2 * local)))
    it = grain.experimental.WithOptionsIterDataset(it, grain.experimental.DatasetOptions(
        filter_warn_threshold_ratio=0.1,
        filter_raise_threshold_ratio=float(data_cfg.get("max_skip_ratio", 0.5))))
    if data_cfg.num_workers > 0:
        # Workers read interleaved slices of the element stream and batching happens after, so
        # batches match the 0-worker pipeline whenever no item is skipped.
        _ensure_flags_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=int(data_cfg.num_workers),
                                                         per_worker_buffer_size=local))
    it = it.batch(local, drop_remainder=True, batch_fn=_stack)
    it.skips = read.skips  # filled in this process when num_workers == 0 (workers log their own)
    return it


def _bucket(n: int, bucket_samples: int) -> int:
    return max(1, -(-n // bucket_samples)) * bucket_samples


def _pad_batch(recs: list[dict], bucket_samples: int) -> dict:
    length = _bucket(max(r["audio"].size for r in recs), bucket_samples)
    audio = np.zeros((len(recs), length), np.float32)
    mask = np.zeros((len(recs), length), np.float32)
    for i, r in enumerate(recs):
        audio[i, :r["audio"].size] = r["audio"]
        mask[i, :r["audio"].size] = 1.0
    return {"audio": audio, "mask": mask, "ids": [r["id"] for r in recs], "records": recs}


def utterance_batches(source: sources.UtteranceSource | Sequence[dict] | str, *, batch_size: int,
                      bucket_samples: int, process_index: int = 0, process_count: int = 1,
                      split: str = "test", skips: audio_lib.SkipLog | None = None,
                      ) -> Iterator[dict]:
    """Full utterances, padded to a multiple of `bucket_samples`, batched by length bucket.

    Process i takes items i, i + P, ... and groups them by length bucket (each bucket fills its
    own batches; partial batches are flushed at the end, smallest bucket first), so padding
    stays below `bucket_samples` per row. Yields {"audio": float32 [b, L], "mask": float32
    [b, L], "ids": list[str], "records": list[dict]} with b <= batch_size. Bad items are
    skipped into `skips` (a SkipLog, created and summarised in the log if not given).
    `source` may also be a list of records, or a spec string (then `split` picks the split).
    """
    if isinstance(source, str):
        source = sources.open_source(source, split)
    own_log = skips is None
    if own_log:
        skips = audio_lib.SkipLog(repr(source))
    pending: dict[int, list[dict]] = {}
    for _, rec in sources.read_items(source, range(process_index, len(source), process_count), skips):
        key = _bucket(rec["audio"].size, bucket_samples)
        group = pending.setdefault(key, [])
        group.append(rec)
        if len(group) == batch_size:
            yield _pad_batch(pending.pop(key), bucket_samples)
    for key in sorted(pending):
        yield _pad_batch(pending[key], bucket_samples)
    if own_log and len(skips):
        logging.warning(skips.summary())
