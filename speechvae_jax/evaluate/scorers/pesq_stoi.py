"""PESQ (ITU-T P.862, package `pesq`) and STOI / ESTOI (package `pystoi`) adapters.

Both score at 16 kHz as given (PESQ narrow band through P.862's own 16 kHz path, no resampling
here; pystoi resamples to 10 kHz internally). Inputs are cast to float64."""
from __future__ import annotations

import numpy as np


def pesq_scores(ref: np.ndarray, est: np.ndarray, sr: int = 16000) -> dict:
    """{"pesq_wb", "pesq_nb"} of est [N] against ref [N]; raises ValueError when PESQ finds no
    utterance (silent reference)."""
    from pesq import PesqError, pesq

    ref = np.asarray(ref, np.float64)
    est = np.asarray(est, np.float64)
    out = {}
    for mode in ("wb", "nb"):
        value = pesq(sr, ref, est, mode, on_error=PesqError.RETURN_VALUES)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"PESQ-{mode} failed (code {value}): no speech found")
        out[f"pesq_{mode}"] = float(value)
    return out


def stoi_scores(ref: np.ndarray, est: np.ndarray, sr: int = 16000) -> dict:
    """{"stoi", "estoi"} of est [N] against ref [N]."""
    from pystoi import stoi

    ref = np.asarray(ref, np.float64)
    est = np.asarray(est, np.float64)
    return {"stoi": float(stoi(ref, est, sr, extended=False)),
            "estoi": float(stoi(ref, est, sr, extended=True))}
