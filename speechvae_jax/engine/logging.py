"""Run logging: a JSONL metrics file, TensorBoard events, audio samples and spectrogram images.

Only process 0 writes. Files under the run folder:
  metrics.jsonl             one JSON object per logged step ({"step": ..., "loss/stft": ..., ...})
  tb/                       TensorBoard event files (tensorboardX; `tensorboard --logdir RUN/tb`)
  samples/step_0001500/     e.g. `<i>_orig.wav`, `<i>_recon.wav` and `spectrograms.png`

A resumed run continues the log from the restored step: rows after it (logged before the
interruption, then lost with the unsaved progress) are dropped from metrics.jsonl, and TensorBoard is
told to purge events after it, so each step appears once. On an object store (gs://) metrics.jsonl is
rewritten whole at each log (objects cannot be appended to) and TensorBoard events are written to
a local folder named in the log.
"""
from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import soundfile as sf
from absl import logging

from speechvae_jax import fileio

METRICS_FILE = "metrics.jsonl"


def read_metrics(workdir: str) -> list[dict]:
    """The rows of RUN/metrics.jsonl ([] when absent)."""
    path = fileio.as_path(workdir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLogger:
    """Metrics, TensorBoard scalars and samples of one run (a no-op off process 0)."""

    def __init__(self, workdir: str, *, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = fileio.as_path(workdir)
        self._tb = None
        self._rows: list[dict] = []
        if not enabled:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_metrics(workdir) if r.get("step", 0) <= resume_step]
        dropped = len(read_metrics(workdir)) - len(kept)
        if dropped:
            logging.info("metrics.jsonl: dropping %d rows logged after step %d (not in the checkpoint)",
                         dropped, resume_step)
            fileio.atomic_write_text(self.path / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept))
        self._rows = kept
        tb_dir = str(self.path / "tb")
        if fileio.is_remote(self.path):
            tb_dir = os.path.join(tempfile.gettempdir(), "speechvae_tb", self.path.name)
            logging.warning("TensorBoard events of %s are written locally to %s", self.path, tb_dir)
        from tensorboardX import SummaryWriter  # optional heavy import: only process 0 logs

        self._tb = SummaryWriter(tb_dir, purge_step=resume_step + 1 if resume_step else None)

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self._rows.append(row)
        target = self.path / METRICS_FILE
        if fileio.is_remote(target):
            fileio.atomic_write_text(target, "".join(json.dumps(r) + "\n" for r in self._rows))
        else:
            with open(target, "a") as f:
                f.write(json.dumps(row) + "\n")
        for k, v in values.items():
            self._tb.add_scalar(k, float(v), int(step))
        self._tb.flush()

    def sample_dir(self, step: int):
        """RUN/samples/step_NNNNNNN (created)."""
        out = self.path / "samples" / f"step_{int(step):07d}"
        out.mkdir(parents=True, exist_ok=True)
        return out

    def audio(self, step: int, name: str, audio: np.ndarray, sample_rate: int) -> None:
        """Write RUN/samples/step_N/<name>.wav (16-bit) and add it to TensorBoard."""
        if not self.enabled:
            return
        x = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
        buf = io.BytesIO()
        sf.write(buf, x, sample_rate, format="WAV", subtype="PCM_16")
        fileio.atomic_write_bytes(self.sample_dir(step) / f"{name}.wav", buf.getvalue())
        self._tb.add_audio(name, x, int(step), sample_rate)

    def figure(self, step: int, name: str, fig) -> None:
        """Save a matplotlib figure as RUN/samples/step_N/<name>.png."""
        if not self.enabled:
            return
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        fileio.atomic_write_bytes(self.sample_dir(step) / f"{name}.png", buf.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
