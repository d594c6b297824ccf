"""Reconstruction quality at every kept checkpoint of a run, against training CPU time.

  python -m speechvae_jax.evaluate.checkpoint_curve RUN [--data SOURCE] [--cpu-log FILE] [--out FILE]

For each checkpoint step: STOI, PESQ-WB, mel distance, pocketsphinx WER (and the originals' WER),
DC offset and frame-rate comb of the EMA weights' resyntheses of the evaluation's test utterances
(the same selection as `speechvae evaluate`), plus the run's validation MR-STFT at that step. Training
time is the wall time of metrics.jsonl and, with `--cpu-log`, the CPU time of the training process:
lines "unix_time cpu_ticks ticks_per_second" sampled while it ran (user + system time of the process
and its children, e.g. from /proc/PID/stat), interpolated at each checkpoint's wall time, so runs on
a shared machine compare by the CPU they used. Prints a markdown table; writes the rows as JSON.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from speechvae_jax import fileio
from speechvae_jax.data import sources
from speechvae_jax.engine import checkpoint
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.evaluate import protocol, reconstruction, scorers
from speechvae_jax.inference import load_for_inference

FIGURES = ("stoi", "pesq_wb", "mel_distance", "wer", "dc_offset", "frame_comb_db")


def read_cpu_log(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(unix times [K], CPU seconds [K]) from a sampler log (module docstring)."""
    rows = np.loadtxt(path, ndmin=2)
    return rows[:, 0], rows[:, 1] / rows[:, 2]


def _metrics(workdir: str) -> tuple[dict[int, float], dict[int, float]]:
    """({step: unix wall time}, {step: val/stft}) from RUN/metrics.jsonl (empty when absent)."""
    path = os.path.join(workdir, "metrics.jsonl")
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f]
    times = {int(r["step"]): float(r["perf/wall_time"]) for r in rows if "perf/wall_time" in r}
    return times, {int(r["step"]): float(r["val/stft"]) for r in rows if "val/stft" in r}


def score_step(workdir: str, step: int, records: list[dict]) -> dict:
    """Aggregated resynthesis scores of checkpoint `step` on records (FIGURES and the originals' WER)."""
    model = load_for_inference(workdir, step)
    resynth = reconstruction.resynthesize(model, records)
    results = [scorers.score_utterance(r["audio"], resynth[r["id"]], r.get("text", ""),
                                       intrusive=("pesq", "stoi", "spectral"), dnsmos_on=False)
               for r in records]
    summary = scorers.aggregate(results)
    row = {k: summary["recon"].get(k) for k in FIGURES}
    row["wer_ground_truth"] = summary["ground_truth"].get("wer")
    return row


def checkpoint_curve(workdir: str, data: str | None = None, cpu_log: str | None = None,
                     utterances: int | None = None) -> list[dict]:
    """One row per kept checkpoint: step, wall_min and cpu_min (None when unknown), val_stft, FIGURES.

    The utterances are the evaluation protocol's reconstruction selection (`utterances` overrides its count).
    """
    config = load_config(workdir)
    rec = protocol.default_eval_config().reconstruction
    records, _ = sources.read_records(data or config.data.source, rec.split, utterances or rec.utterances,
                                      selection=rec.selection, seed=rec.seed, balance_by=rec.balance_by)
    ckpts = checkpoint.Checkpoints(workdir, read_only=True)
    steps = ckpts.steps()
    ckpts.close()
    times, val = _metrics(workdir)
    t0 = min(times.values(), default=0.0)
    cpu = read_cpu_log(cpu_log) if cpu_log else None
    rows = []
    for step in steps:
        wall = times.get(step)
        row = {"step": step, "wall_min": None if wall is None else (wall - t0) / 60.0, "cpu_min": None,
               "val_stft": val.get(step)}
        if cpu is not None and wall is not None:
            row["cpu_min"] = float(np.interp(wall, cpu[0], cpu[1])) / 60.0
        row.update(score_step(workdir, step, records))
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    keys = ["step", "wall_min", "cpu_min", "val_stft", *FIGURES, "wer_ground_truth"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join("-" if r.get(k) is None else
                                       (str(r[k]) if k == "step" else f"{r[k]:.3f}") for k in keys) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--data", default=None, help="data source (default: the run's config.data.source)")
    ap.add_argument("--cpu-log", default=None, help="CPU samples of the training process")
    ap.add_argument("--out", default=None, help="JSON rows (default RUN/eval/checkpoint_curve.json)")
    args = ap.parse_args()
    rows = checkpoint_curve(args.run, args.data, args.cpu_log)
    out = args.out or os.path.join(args.run, "eval", "checkpoint_curve.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fileio.atomic_write_json(out, rows, sort_keys=True)
    print(format_table(rows))
    print(f"rows written to {out}")


if __name__ == "__main__":
    main()
