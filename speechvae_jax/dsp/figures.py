"""Figures of signals for people to look at: original vs reconstruction log-mel spectrograms."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speechvae_jax.constants import SAMPLE_RATE  # noqa: E402
from speechvae_jax.dsp.spectral import log_mel  # noqa: E402

DISPLAY_MEL = {"n_fft": 1024, "hop": 160, "n_mels": 80}  # 10 ms frames: harmonics and onsets visible


def display_log_mel(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """log10 mel [frames, 80] of audio [N] for display (n_fft 1024, hop 160)."""
    return np.asarray(log_mel(np.asarray(audio, np.float32)[None], sample_rate, **DISPLAY_MEL)[0])


def spectrogram_pairs(pairs, sample_rate: int = SAMPLE_RATE, title: str = "",
                      labels: tuple[str, str] = ("original", "reconstruction")):
    """A figure with one row per (name, reference [N], estimate [M]): their log-mel spectrograms side
    by side on a shared colour scale, time in seconds, titled "name: label". Close it with plt.close(fig)."""
    fig, axes = plt.subplots(len(pairs), 2, figsize=(10, 2.2 * len(pairs) + 0.4), squeeze=False)
    for row, (name, ref, rec) in zip(axes, pairs):
        a, b = display_log_mel(ref, sample_rate), display_log_mel(rec, sample_rate)
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        for ax, spec, label, n in ((row[0], a, f"{name}: {labels[0]}", len(ref)),
                                   (row[1], b, f"{name}: {labels[1]}", len(rec))):
            ax.imshow(spec.T, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma",
                      extent=(0, n / sample_rate, 0, spec.shape[1]))
            ax.set_title(label, fontsize=8)
            ax.set_xlabel("time (s)", fontsize=7)
            ax.set_ylabel("mel bin", fontsize=7)
            ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
