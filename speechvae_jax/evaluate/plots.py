"""PNG figures of a report: original vs reconstruction spectrograms, per-metric bars."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechvae_jax.constants import SAMPLE_RATE  # noqa: E402
from speechvae_jax.dsp.spectral import log_mel  # noqa: E402


def _log_mel(audio: np.ndarray) -> np.ndarray:
    """Log10 mel [frames, 80] for display (n_fft 1024, hop 160)."""
    return np.asarray(log_mel(np.asarray(audio, np.float32)[None], SAMPLE_RATE, 1024, 160, 80)[0])


def spectrogram_pairs(pairs: list[tuple[str, np.ndarray, np.ndarray]], path: str) -> str:
    """One row per (id, original [N], reconstruction [N]): log-mel side by side. Returns path."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 2.2 * len(pairs)), squeeze=False)
    for row, (uid, ref, rec) in zip(axes, pairs):
        a, b = _log_mel(ref), _log_mel(rec)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        for ax, spec, title in ((row[0], a, f"{uid}: original"), (row[1], b, "reconstruction")):
            ax.imshow(spec.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                      extent=(0, len(ref) / 16000, 0, 80))
            ax.set_title(title, fontsize=8)
            ax.set_xlabel("s", fontsize=7)
            ax.set_ylabel("mel bin", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def metric_bars(groups: dict[str, dict[str, float]], path: str, title: str,
                errors: dict[str, dict[str, float]] | None = None) -> str:
    """One panel per metric; bars for each row name (e.g. resynthesis / ground truth, or latent /
    teacher / log-mel): groups = {metric: {row: value}}, errors the same shape (std). Returns path."""
    metrics = list(groups)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.2 * len(metrics) + 1, 2.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = list(groups[metric])
        values = [groups[metric][r] for r in rows]
        err = [errors.get(metric, {}).get(r, 0.0) for r in rows] if errors else None
        ax.bar(range(len(rows)), values, yerr=err, color=plt.cm.tab10(np.arange(len(rows))))
        ax.set_xticks(range(len(rows)), rows, rotation=30, ha="right", fontsize=7)
        ax.set_title(metric, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
