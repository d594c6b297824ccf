"""Reconstruction axis: encode each utterance (posterior mean), decode, score against the original.

The selected utterances are cut into chunks of `chunk_utterances`; each chunk is one cached part
(`evaluate.parts`), so processes share the work and an interrupted run resumes chunk by chunk.
Per-utterance scores are kept in the report and in `reconstruction_per_utterance.csv`.
"""
from __future__ import annotations

import csv
import math
import os
import time

import numpy as np
import tqdm

from speechvae_jax.evaluate import datasets as datasets_lib
from speechvae_jax.evaluate import parts as parts_lib
from speechvae_jax.evaluate import plots, scorers
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


def chunk_parts(model, data: datasets_lib.Datasets, sel: datasets_lib.Selection, rec_cfg: dict, eval_dir: str,
                run_key: dict) -> list[parts_lib.Part]:
    """One part per chunk of `rec_cfg["chunk_utterances"]` selected utterances. Chunk 0 also draws
    the first `spectrogram_examples` utterances to eval_dir/spectrograms.png."""
    _, index = data.indices(sel)
    if not len(index):
        raise ValueError(f"{sel.spec}: split {sel.split!r} has no utterances to reconstruct")
    size = int(rec_cfg["chunk_utterances"])
    out = []
    for k in range(math.ceil(len(index) / size)):
        positions = list(range(k * size, min(len(index), (k + 1) * size)))

        def compute(k=k, positions=positions):
            t0 = time.time()
            records, info = data.read(sel, positions)
            resynth = resynthesize(model, records)
            per_utt = score_records(records, resynth)
            plot_names = []
            if k == 0 and records and rec_cfg["spectrogram_examples"]:
                pairs = [(r["id"], r["audio"], resynth[r["id"]]) for r in records[:rec_cfg["spectrogram_examples"]]]
                png = plots.spectrogram_pairs(pairs, os.path.join(eval_dir, "spectrograms.png"))
                plot_names.append(os.path.basename(png))
            return {"per_utterance": per_utt, "ids": [r["id"] for r in records], "info": info,
                    "wall_seconds": time.time() - t0, "plots": plot_names}

        key = {**run_key, "reconstruction": rec_cfg, "chunk": k, "indices": index[positions].tolist(),
               "scorers": sorted(scorers.INTRUSIVE)}   # a new scorer recomputes the chunks
        out.append(parts_lib.Part(f"reconstruction/{k}", os.path.join(eval_dir, "parts", "reconstruction",
                                                                      f"chunk-{k:05d}.json"), key, compute))
    return out


def assemble(chunks: list[dict], sel: datasets_lib.Selection) -> dict:
    """The report section from the chunk results, in chunk order."""
    per_utt = [u for c in chunks for u in c["per_utterance"]]
    ids = [i for c in chunks for i in c["ids"]]
    infos = [c["info"] for c in chunks]
    info = {"split": sel.split, "available": infos[0]["available"],
            "selected": sum(i["selected"] for i in infos), "skipped": sum(i["skipped"] for i in infos),
            "skip_reasons": [r for i in infos for r in i["skip_reasons"]],
            "ids_sha256_16": datasets_lib.ids_hash(ids), "selection": sel.selection, "limit": sel.limit}
    if not per_utt:
        raise ValueError(f"{sel.spec}: split {sel.split!r} has no readable utterances")
    return {"summary": scorers.aggregate(per_utt), "per_utterance": per_utt, "ids": ids,
            "datasets": {sel.name: info}, "seconds_audio": float(sum(u["seconds"] for u in per_utt)),
            "wall_seconds": float(sum(c["wall_seconds"] for c in chunks)), "chunks": len(chunks),
            "plots": [p for c in chunks for p in c["plots"]]}


def write_per_utterance_csv(section: dict, path: str) -> str:
    """One row per utterance: id, seconds, then every resynthesis metric and ground-truth metric
    (prefixed `gt_`), blank where a scorer failed."""
    rows = section["per_utterance"]
    recon = sorted({k for r in rows for k in r["recon"]})
    truth = sorted({k for r in rows for k in r["ground_truth"]})
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "seconds", *recon, *(f"gt_{k}" for k in truth), "errors"])
        for r in rows:
            w.writerow([r["id"], f"{r['seconds']:.3f}", *(r["recon"].get(k, "") for k in recon),
                        *(r["ground_truth"].get(k, "") for k in truth), "; ".join(sorted(r["errors"]))])
    return path
