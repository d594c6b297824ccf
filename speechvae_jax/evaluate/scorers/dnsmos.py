"""DNSMOS P.835 and P.808 (package `speechmos`, its shipped ONNX models; no reference needed).

Clips shorter than 9.01 s are tiled by speechmos itself; input is clipped to [-1, 1] (float32)."""
from __future__ import annotations

import numpy as np


def dnsmos_scores(audio: np.ndarray, sr: int = 16000) -> dict:
    """{"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"} of audio [N] at 16 kHz."""
    from speechmos import dnsmos as _dnsmos

    out = _dnsmos.run(np.clip(np.asarray(audio, np.float32), -1.0, 1.0), sr)
    return {"dnsmos_ovrl": float(out["ovrl_mos"]), "dnsmos_sig": float(out["sig_mos"]),
            "dnsmos_bak": float(out["bak_mos"]), "dnsmos_p808": float(out["p808_mos"])}
