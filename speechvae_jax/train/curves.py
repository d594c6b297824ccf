"""Quality-vs-training-time curves of a run, read back from its metrics.jsonl.

  python -m speechvae_jax.train.curves RUN [--out RUN/curves.png]

prints a table (elapsed wall time, step, validation MR-STFT and mel distance of the EMA weights) and
writes the plot.
"""
from __future__ import annotations

import argparse
import io
import os

from speechvae_jax import fileio
from speechvae_jax.engine.logging import read_metrics


def validation_curve(run: str) -> list[dict]:
    """Rows of RUN/metrics.jsonl (local or gs://) with validation metrics: {"step", "elapsed_s",
    "val/stft", "val/mel"}, in step order.

    elapsed_s counts from the first logged row of the file (a resumed run's pause is included).
    """
    rows = read_metrics(run)
    t0 = min((r["perf/wall_time"] for r in rows if "perf/wall_time" in r), default=None)
    val = [r for r in rows if "val/stft" in r]
    return [{"step": r["step"], "elapsed_s": r.get("perf/wall_time", t0) - t0 if t0 else float("nan"),
             "val/stft": r["val/stft"], "val/mel": r["val/mel"]} for r in sorted(val, key=lambda r: r["step"])]


def plot_curve(curve: list[dict], path: str, title: str = "") -> None:
    """Validation MR-STFT and mel distance against training wall time, as a PNG at `path` (local or gs://)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    minutes = [r["elapsed_s"] / 60 for r in curve]
    for a, key in zip(ax, ("val/stft", "val/mel")):
        a.plot(minutes, [r[key] for r in curve], marker="o")
        a.set_xlabel("training wall time (min)")
        a.set_ylabel(key)
        a.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    fileio.atomic_write_bytes(path, buf.getvalue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    curve = validation_curve(args.run)
    print("| minutes | step | val MR-STFT | val mel distance |\n|---|---|---|---|")
    for r in curve:
        print(f"| {r['elapsed_s'] / 60:.1f} | {r['step']} | {r['val/stft']:.4f} | {r['val/mel']:.4f} |")
    out = args.out or os.path.join(args.run, "curves.png")
    plot_curve(curve, out, title=fileio.as_path(args.run).name)
    print(f"plot written to {out}")


if __name__ == "__main__":
    main()
