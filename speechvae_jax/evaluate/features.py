"""Frame features at the latent rate (the run's `model.hop`, 400 = 40 Hz by default) for the probes,
and the utterances they come from.

A *feature item* is `{"id": str, "x": float32 [T,D], "mask": bool [T], **labels}` with
T = ceil(N / hop) for an utterance of N samples; `mask` marks frames the extractor vouches for.
Extractors: the run's latents (read from an export), the teacher's hidden states at the configured
layer or at every layer stacked [T, K, D] (resampled to 40 Hz by `teachers.features.teacher_targets`)
and log-mel
(`dsp.spectral.log_mel`, 80 bins, n_fft 1024, at the latent hop, log10 with floor 1e-5)."""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.constants import LATENT_HOP, SAMPLE_RATE
from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data import pipeline, sources
from speechvae_jax.dsp.spectral import log_mel
from speechvae_jax.export import latent_source
from speechvae_jax.teachers.features import teacher_targets

BUCKET_SAMPLES = 32000  # pad to 2 s multiples: few jit compilations, little padding
MEL = {"sample_rate": SAMPLE_RATE, "n_fft": 1024, "n_mels": 80}  # hop: the latent hop


def select_utterances(spec: str, split: str, limit: int) -> tuple[list[dict], dict]:
    """Up to `limit` standard utterances of a split, evenly spaced over the source order
    (deterministic); unreadable items are skipped and counted (`data.sources.read_records`).

    Returns (records, {"split", "available", "selected", "skipped", "skip_reasons"})."""
    return sources.read_records(spec, split, limit)


def num_frames(num_samples: int, hop: int = LATENT_HOP) -> int:
    """Latent frames T = ceil(N / hop)."""
    return math.ceil(num_samples / hop)


def labels_of(record: dict) -> dict:
    """Everything of a standard utterance except its audio."""
    return {k: v for k, v in record.items() if k != "audio"}


def padded_batches(records: list[dict], batch_size: int = 8) -> Iterable[dict]:
    """Records padded to 2 s buckets (`data.pipeline.utterance_batches`): {"audio" [b,L],
    "mask" [b,L], "records"}."""
    return pipeline.utterance_batches(records, batch_size=batch_size, bucket_samples=BUCKET_SAMPLES,
                                      skips=audio_lib.SkipLog("evaluate"))


@functools.cache
def _log_mel_fn(hop: int):
    return jax.jit(lambda audio: log_mel(audio, hop=hop, **MEL))


def log_mel_items(records: list[dict], hop: int = LATENT_HOP) -> list[dict]:
    """Log-mel feature items [T, 80] of the records."""
    items = []
    for batch in padded_batches(records):
        mel = np.asarray(_log_mel_fn(hop)(jnp.asarray(batch["audio"])))
        for row, rec in zip(mel, batch["records"]):
            t = num_frames(rec["audio"].size, hop)
            items.append({"x": row[:t], "mask": np.ones(t, bool), **labels_of(rec)})
    return items


def teacher_layer_items(teacher, layers: Sequence, records: list[dict], hop: int = LATENT_HOP, *,
                        stacked: bool = False) -> list[list[dict]]:
    """Teacher feature items of several layers from one forward pass per batch, 50 -> 40 Hz linear.

    layers: entries as `teachers.features.teacher_targets` takes them (int, list = mean, "average").
    Returns one item list [T, D] per entry, or with `stacked` a single list whose items hold every
    entry, x [T, K, D] (K = len(layers); what the layer-weighted probes read)."""
    out: list[list[dict]] = [[] for _ in layers]
    for batch in padded_batches(records):
        audio, mask = jnp.asarray(batch["audio"]), jnp.asarray(batch["mask"])
        hidden = teacher.hidden_states(audio, mask)
        per_layer = []
        for layer in layers:
            s, frame_mask = teacher_targets(hidden, layer, audio.shape[1] // hop, mask, "linear",
                                            hop=teacher.hop, receptive_field=teacher.receptive_field,
                                            latent_hop=hop)
            per_layer.append(np.asarray(s))
        frame_mask = np.asarray(frame_mask)  # the same for every layer (it depends on lengths only)
        for i, rec in enumerate(batch["records"]):
            t = num_frames(rec["audio"].size, hop)
            for k, s in enumerate(per_layer):
                out[k].append({"x": s[i, :t], "mask": frame_mask[i, :t], **labels_of(rec)})
    if not stacked:
        return out
    return [[{**first, "x": np.stack([items[j]["x"] for items in out], axis=1)}
             for j, first in enumerate(out[0])]]


def teacher_items(teacher, layer, records: list[dict], hop: int = LATENT_HOP) -> list[dict]:
    """Teacher feature items [T, D] at `layer` (int, list or "average"), 50 -> 40 Hz linear."""
    return teacher_layer_items(teacher, [layer], records, hop)[0]


def all_layer_items(teacher, records: list[dict], hop: int = LATENT_HOP) -> list[dict]:
    """Feature items [T, L+1, D] holding every hidden state of the teacher (input of the first
    transformer layer, then each layer's output)."""
    return teacher_layer_items(teacher, list(range(teacher.config.num_hidden_layers + 1)), records, hop,
                               stacked=True)[0]


def latent_items(export_dir: str, records: list[dict]) -> tuple[list[dict], list[str]]:
    """Latent feature items [T, 64] read from an export for the records' ids (labels from the
    records). Returns (items, ids missing from the export)."""
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
