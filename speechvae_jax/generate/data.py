"""TTS examples from exported latents: normalised latent frames with one text token per frame.

`data.latents` is an export root holding one export per split (`speechvae export --split S --out
ROOT/S`). A record becomes an example of F = `data.max_frames` frames:
  {"latent": float32 [F, L] = (z - latent_mean) / latent_std (the train export's manifest), zero
   past the end; "mask": bool [F] (real frames); "tokens": int32 [F] (generate/text.py layouts)}.
"filler" mode takes whole utterances (one longer than F frames, or with more units than frames, is
skipped); "aligned" mode takes a random window of F frames of a longer utterance, tokens cut with it.
With `data.prompt_pairs` = p, a record is, with probability p, preceded by another utterance of its
speaker (`join_records`): sampling lays a prompt utterance before the target the same way, so the
model sees such lengths and positions in training (without it, a tiny TTS trained on single 4 s
windows drones past its window length; docs/generation.md).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import grain
import numpy as np
from ml_collections import ConfigDict

from speechvae_jax.export.reader import LatentSource, latent_source
from speechvae_jax.generate import text as text_lib


def split_dir(data_cfg: ConfigDict, split: str) -> str:
    """The export of `split` under the export root `data.latents`."""
    path = os.path.join(data_cfg.latents, split)
    if not os.path.exists(os.path.join(path, "manifest.json")):
        raise FileNotFoundError(f"no finished export of split {split!r} at {path} (data.latents must hold "
                                f"one export per split: speechvae export --split {split} --out {path})")
    return path


def latent_stats(manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """(mean [L], std [L]) float32 of an export manifest (per channel, over valid frames)."""
    mean = np.asarray(manifest["latent_mean"], np.float32)
    std = np.asarray(manifest["latent_std"], np.float32)
    if mean.shape != std.shape or np.any(std <= 0):
        raise ValueError(f"manifest latent statistics unusable: mean {mean.shape}, std {std.shape}, "
                         f"min std {std.min() if std.size else None}")
    return mean, std


def frame_tokens(record: dict, text_cfg: ConfigDict, vocab: text_lib.Vocab) -> np.ndarray | None:
    """int32 [T] tokens of a whole record (T = its frames), or None when its text does not fit."""
    num_frames = int(record["num_frames"])
    ids = vocab.encode(text_lib.units_of(record, text_cfg.units))
    if text_cfg.mode == "filler":
        return text_lib.filler_tokens(ids, num_frames) if 0 < len(ids) <= num_frames else None
    if "phoneme_start_frames" not in record or len(ids) != len(record["phoneme_start_frames"]):
        return None
    return text_lib.aligned_tokens(ids, record["phoneme_start_frames"], record["phoneme_end_frames"], num_frames)


def join_records(first: dict, second: dict) -> dict:
    """One record of `first` followed by `second`: latents, text ("a b"), phonemes and their frame
    spans (second's shifted by first's frames); other fields are the second's."""
    offset = int(first["num_frames"])
    out = dict(second)
    out["latent"] = np.concatenate([first["latent"], second["latent"]])
    out["num_frames"] = offset + int(second["num_frames"])
    out["text"] = f"{first.get('text', '')} {second.get('text', '')}".strip()
    out["phonemes"] = f"{first.get('phonemes', '')} {second.get('phonemes', '')}".strip()
    for key in ("phoneme_start_frames", "phoneme_end_frames"):
        if key in first and key in second:
            out[key] = np.concatenate([np.asarray(first[key]), np.asarray(second[key]) + offset])
        else:
            out.pop(key, None)
    return out


def speaker_groups(speakers: Sequence[str]) -> list[np.ndarray]:
    """For each record, the indices of the other records of its speaker, int [k] (empty when it has
    none or no speaker label)."""
    by_speaker: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        if spk:
            by_speaker.setdefault(spk, []).append(i)
    return [np.asarray([j for j in by_speaker.get(spk, []) if j != i], np.int64) if spk else
            np.zeros(0, np.int64) for i, spk in enumerate(speakers)]


def speakers_of(source: Sequence[dict]) -> list[str]:
    """Speaker label of every record of a LatentSource (shard summaries) or a list of records."""
    return source.speakers() if isinstance(source, LatentSource) else [str(r.get("speaker", "")) for r in source]


class Examples:
    """record, start -> example (or None when the record does not fit the text mode); picklable."""

    def __init__(self, text_cfg: ConfigDict, vocab: text_lib.Vocab, stats: tuple[np.ndarray, np.ndarray],
                 max_frames: int):
        self.text_cfg, self.vocab, self.max_frames = text_cfg, vocab, int(max_frames)
        self.mean, self.std = stats

    def window_start(self, record: dict, rng: np.random.Generator | None) -> int | None:
        """First frame of the example: 0, a random one (aligned, long record, rng given), or None
        when a filler-mode record is too long."""
        extra = int(record["num_frames"]) - self.max_frames
        if extra <= 0:
            return 0
        if self.text_cfg.mode == "filler":
            return None
        return 0 if rng is None else int(rng.integers(0, extra + 1))

    def __call__(self, record: dict, rng: np.random.Generator | None = None) -> dict | None:
        start = self.window_start(record, rng)
        tokens = frame_tokens(record, self.text_cfg, self.vocab)
        if start is None or tokens is None:
            return None
        z = (record["latent"][start:start + self.max_frames] - self.mean) / self.std
        n = z.shape[0]
        out = {"latent": np.zeros((self.max_frames, z.shape[1]), np.float32),
               "mask": np.zeros(self.max_frames, bool),
               "tokens": np.full(self.max_frames, text_lib.FILLER, np.int32)}
        out["latent"][:n], out["mask"][:n], out["tokens"][:n] = z, True, tokens[start:start + n]
        return out


def _stack(items: list[dict]) -> dict:
    return {k: np.stack([i[k] for i in items]) for k in items[0]}


def train_dataset(source: Sequence[dict], examples: Examples, *, global_batch_size: int, seed: int,
                  process_index: int, process_count: int, read_threads: int = 2,
                  prompt_pairs: float = 0.0) -> grain.IterDataset:
    """Endless per-process batches {"latent" [b,F,L], "mask" [b,F], "tokens" [b,F]}, b = global / P,
    from a random-access source of latent records (a LatentSource, or a list of its records).

    Process i reads records i, i + P, ... reshuffled every epoch with `seed`; per-record windows
    (and, with `prompt_pairs` > 0, the choice of a same-speaker utterance put before the record) are
    seeded by position, so the stream depends on nothing else. The iterator state is JSON.
    """
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} not divisible by {process_count} processes")
    if len(source) < process_count:
        raise ValueError(f"{source} has fewer records than the {process_count} processes")

    groups = speaker_groups(speakers_of(source)) if prompt_pairs > 0 else None

    def load(index, rng: np.random.Generator):
        record = source[index]
        if groups is not None and len(groups[index]) and rng.random() < prompt_pairs:
            record = join_records(source[int(rng.choice(groups[index]))], record)
        return examples(record, rng)

    ds = grain.MapDataset.range(len(source))[process_index::process_count]
    ds = ds.shuffle(seed=seed).repeat(None).random_map(load, seed=seed)
    local = global_batch_size // process_count
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=max(2, 2 * local)))
    return it.batch(local, drop_remainder=True, batch_fn=_stack)


def fixed_batches(source: Sequence[dict], examples: Examples, *, batch_size: int, num_batches: int,
                  prompt_pairs: bool = False) -> list[dict]:
    """The first usable records of a source (first windows) in up to `num_batches` batches, each
    preceded by the first other record of its speaker when `prompt_pairs` (and it has one); the last
    batch is completed with empty rows (mask all False: no weight in the loss)."""
    groups = speaker_groups(speakers_of(source)) if prompt_pairs else None
    items = []
    for i in range(len(source)):
        if len(items) == batch_size * num_batches:
            break
        record = source[i]
        if groups is not None and len(groups[i]):
            record = join_records(source[int(groups[i][0])], record)
        example = examples(record)
        if example is not None:
            items.append(example)
    if not items:
        return []
    empty = {k: np.zeros_like(v) for k, v in items[0].items()}
    items += [empty] * (-len(items) % batch_size)
    return [_stack(items[k:k + batch_size]) for k in range(0, len(items), batch_size)]


def open_split(data_cfg: ConfigDict, split: str) -> LatentSource:
    """The latent source of `split` under `data.latents`."""
    return latent_source(split_dir(data_cfg, split))
