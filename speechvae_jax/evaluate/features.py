"""Frame features at the latent rate (40 Hz, hop 400) for the probes, and the utterances they
come from.

A *feature item* is `{"id": str, "x": float32 [T,D], "mask": bool [T], **labels}` with
T = ceil(N / 400) for an utterance of N samples; `mask` marks frames the extractor vouches for.
Three extractors: the run's latents (read from an export), the teacher's hidden states at the
configured layer (resampled to 40 Hz by `teachers.features.teacher_targets`) and log-mel
(`losses.spectral.mel_spectrogram`, 80 bins, n_fft 1024, hop 400, log10 with floor 1e-5)."""
from __future__ import annotations

import functools
import math
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

HOP = 400
BUCKET_SAMPLES = 32000  # pad to 2 s multiples: few jit compilations, little padding
MEL = {"sample_rate": 16000, "n_fft": 1024, "hop": HOP, "n_mels": 80}


def select_utterances(spec: str, split: str, limit: int) -> tuple[list[dict], dict]:
    """Up to `limit` standard utterances of a split, evenly spaced over the source order
    (deterministic). Unreadable items are skipped and counted.

    Returns (records, {"split", "available", "selected", "skipped", "skip_reasons"})."""
    from speechvae_jax.data import audio as audio_lib
    from speechvae_jax.data import sources

    source = sources.open_source(spec, split)
    n = len(source)
    index = np.unique(np.linspace(0, n - 1, min(limit, n)).round().astype(int)) if n else []
    records, skips = [], audio_lib.SkipLog(f"{spec}[{split}]")
    for i in index:
        try:
            records.append(source[int(i)])
        except audio_lib.AudioError as e:
            skips.add(e)
    if len(skips):
        logging.warning(skips.summary())
    return records, {"split": split, "available": n, "selected": len(records), "skipped": len(skips),
                     "skip_reasons": [str(e) for e in skips.errors]}


def num_frames(num_samples: int) -> int:
    """Latent frames T = ceil(N / 400)."""
    return math.ceil(num_samples / HOP)


def labels_of(record: dict) -> dict:
    """Everything of a standard utterance except its audio."""
    return {k: v for k, v in record.items() if k != "audio"}


def padded_batches(records: list[dict], batch_size: int = 8) -> Iterable[dict]:
    """Records padded to 2 s buckets (`data.pipeline.utterance_batches`): {"audio" [b,L],
    "mask" [b,L], "records"}."""
    from speechvae_jax.data import audio as audio_lib
    from speechvae_jax.data import pipeline

    return pipeline.utterance_batches(records, batch_size=batch_size, bucket_samples=BUCKET_SAMPLES,
                                      skips=audio_lib.SkipLog("evaluate"))


@functools.cache
def _log_mel_fn():
    from speechvae_jax.losses import spectral

    return jax.jit(lambda audio: jnp.log10(jnp.maximum(spectral.mel_spectrogram(audio, **MEL), 1e-5)))


def log_mel_items(records: list[dict]) -> list[dict]:
    """Log-mel feature items [T, 80] of the records."""
    items = []
    for batch in padded_batches(records):
        mel = np.asarray(_log_mel_fn()(jnp.asarray(batch["audio"])))
        for row, rec in zip(mel, batch["records"]):
            t = num_frames(rec["audio"].size)
            items.append({"x": row[:t], "mask": np.ones(t, bool), **labels_of(rec)})
    return items


def teacher_items(teacher, layer, records: list[dict]) -> list[dict]:
    """Teacher feature items [T, D] at `layer` (int, list or "average"), 50 -> 40 Hz linear."""
    from speechvae_jax.teachers.features import teacher_targets

    items = []
    for batch in padded_batches(records):
        audio, mask = jnp.asarray(batch["audio"]), jnp.asarray(batch["mask"])
        hidden = teacher.hidden_states(audio, mask)
        s, frame_mask = teacher_targets(hidden, layer, audio.shape[1] // HOP, mask, "linear",
                                        hop=teacher.hop, receptive_field=teacher.receptive_field,
                                        latent_hop=HOP)
        s, frame_mask = np.asarray(s), np.asarray(frame_mask)
        for i, rec in enumerate(batch["records"]):
            t = num_frames(rec["audio"].size)
            items.append({"x": s[i, :t], "mask": frame_mask[i, :t], **labels_of(rec)})
    return items


def latent_items(export_dir: str, records: list[dict]) -> tuple[list[dict], list[str]]:
    """Latent feature items [T, 64] read from an export for the records' ids (labels from the
    records). Returns (items, ids missing from the export)."""
    from speechvae_jax.export import latent_source

    source = latent_source(export_dir)
    have = set(source.ids())
    items, missing = [], []
    for rec in records:
        if rec["id"] not in have:
            missing.append(rec["id"])
            continue
        x = np.asarray(source[source.index_of(rec["id"])]["latent"], np.float32)
        items.append({"x": x, "mask": np.ones(len(x), bool), **labels_of(rec)})
    return items, missing
