"""PNG figures of a report: original vs reconstruction spectrograms, per-metric bars."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechvae_jax.dsp import figures  # noqa: E402


def spectrogram_pairs(pairs: list[tuple[str, np.ndarray, np.ndarray]], path: str,
                      labels: tuple[str, str] = ("original", "reconstruction")) -> str:
    """One row per (id, reference [N], estimate [M]): log-mel side by side, columns titled by
    `labels`. Returns path."""
    fig = figures.spectrogram_pairs(pairs, labels=labels)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


REFERENCE_ROWS = ("ground truth", "teacher", "log_mel")  # drawn hatched: rows to compare against
LOWER_IS_BETTER = ("distance", "wer", "cer", "per", "fad", "frechet", "dc_offset", "comb", "rmse", "vde")


def metric_bars(groups: dict[str, dict[str, float]], path: str, title: str,
                errors: dict[str, dict[str, float]] | None = None, columns: int = 4) -> str:
    """A grid of small panels, one per metric (`groups = {metric: {row: value}}`, `errors` the same shape,
    as std): a horizontal bar per row with its value written beside it; reference rows are hatched.
    Returns path."""
    metrics = list(groups)
    cols = min(columns, len(metrics))
    rows_n = -(-len(metrics) // cols)
    bars_n = max(len(g) for g in groups.values())
    panel = max(1.9, 0.5 + 0.2 * bars_n)  # panels grow with the number of rows (a study's runs)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(3.4 * cols, 5.0), 0.5 + panel * rows_n), squeeze=False)
    colours = {}
    for ax, metric in zip(axes.ravel(), metrics):
        names = list(groups[metric])
        values = [groups[metric][r] for r in names]
        err = [errors.get(metric, {}).get(r, 0.0) for r in names] if errors else None
        for r in names:
            colours.setdefault(r, plt.cm.tab10(len(colours) % 10))
        bars = ax.barh(range(len(names)), values, xerr=err, color=[colours[r] for r in names], height=0.6)
        for bar, r in zip(bars, names):
            if r in REFERENCE_ROWS:
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        better = "lower" if any(k in metric.lower() for k in LOWER_IS_BETTER) else "higher"
        ax.set_title(f"{metric} ({better} is better)", fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
        lo, hi = min(0.0, min(values)), max(0.0, max(values))
        ax.set_xlim(lo - 0.05 * (hi - lo or 1), hi + 0.35 * (hi - lo or 1))
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
