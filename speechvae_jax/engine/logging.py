"""Run logging: a JSONL metrics file, TensorBoard events, audio samples and spectrogram images.

Only process 0 writes. Files under the workdir:
  metrics.jsonl             one JSON object per logged step ({"step": ..., "loss/stft": ..., ...})
  tb/                       TensorBoard event files (tensorboardX)
  samples/step_0001500/     reconstructions of fixed validation crops: `<i>_orig.wav`, `<i>_recon.wav`,
                            and `spectrograms.png` (original above reconstruction)
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import soundfile as sf


class RunLogger:
    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.workdir = workdir
        self._tb = None
        if self.enabled:
            os.makedirs(workdir, exist_ok=True)
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.path.join(workdir, "tb"))
        self._jsonl = os.path.join(workdir, "metrics.jsonl")

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": int(step)}
        row.update({k: float(v) for k, v in values.items()})
        with open(self._jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in values.items():
            self._tb.add_scalar(k, float(v), int(step))
        self._tb.flush()

    def samples(self, step: int, original: np.ndarray, recon: np.ndarray, sample_rate: int) -> str:
        """Write wavs and a spectrogram figure for [K,N] original / reconstruction pairs."""
        if not self.enabled:
            return ""
        out = os.path.join(self.workdir, "samples", f"step_{int(step):07d}")
        os.makedirs(out, exist_ok=True)
        for i, (x, y) in enumerate(zip(original, recon)):
            sf.write(os.path.join(out, f"{i}_orig.wav"), np.clip(x, -1, 1), sample_rate, "PCM_16")
            sf.write(os.path.join(out, f"{i}_recon.wav"), np.clip(y, -1, 1), sample_rate, "PCM_16")
            self._tb.add_audio(f"sample_{i}/recon", np.clip(y, -1, 1), int(step), sample_rate)
        save_spectrogram_figure(os.path.join(out, "spectrograms.png"), original, recon, sample_rate,
                                title=f"step {int(step)}")
        return out

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def save_spectrogram_figure(path: str, original: np.ndarray, recon: np.ndarray, sample_rate: int,
                            title: str = "") -> None:
    """Log-magnitude spectrograms, one column per pair: original (top) and reconstruction (bottom)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(original)
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k, 5), squeeze=False)
    for i in range(k):
        for row, (x, name) in enumerate(((original[i], "original"), (recon[i], "reconstruction"))):
            axes[row, i].specgram(np.asarray(x, np.float64) + 1e-9, NFFT=512, Fs=sample_rate,
                                  noverlap=384, cmap="magma")
            axes[row, i].set_title(f"{name} {i}", fontsize=8)
            axes[row, i].tick_params(labelsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
