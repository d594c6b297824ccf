"""Small deterministic test signals shared by the DSP and loss tests."""
import numpy as np


def tone_plus_noise(n: int = 4000, seed: int = 0, batch: int = 2) -> np.ndarray:
    """float32 [batch, n]: a 440 Hz tone at 16 kHz (amplitude 0.3) plus white noise (std 0.05)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return (tone[None] + 0.05 * rng.normal(size=(batch, n))).astype(np.float32)
