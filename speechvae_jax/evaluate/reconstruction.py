"""Reconstruction axis: encode each utterance (posterior mean), decode, score against the original."""
from __future__ import annotations

import numpy as np
import tqdm

from speechvae_jax.evaluate import scorers
from speechvae_jax.evaluate.features import padded_batches


def resynthesize(model, records: list[dict]) -> dict[str, np.ndarray]:
    """{id: resynthesis float32 [N]} of each record's audio through model.encode (posterior mean,
    padded 2 s buckets with a sample mask) and model.decode, cut to the original length."""
    out = {}
    for batch in padded_batches(records):
        mean, _, _ = model.encode(batch["audio"], batch["mask"])
        audio = np.asarray(model.decode(mean), np.float32)
        for row, rec in zip(audio, batch["records"]):
            out[rec["id"]] = row[:rec["audio"].size]
    return out


def score_records(records: list[dict], resynth: dict[str, np.ndarray]) -> list[dict]:
    """`scorers.score_utterance` per record (with its id and duration), tqdm progress."""
    results = []
    for rec in tqdm.tqdm(records, desc="scoring reconstructions", unit="utt"):
        res = scorers.score_utterance(rec["audio"], resynth[rec["id"]], rec.get("text", ""))
        results.append({"id": rec["id"], "seconds": rec["audio"].size / scorers.SAMPLE_RATE, **res})
    return results
