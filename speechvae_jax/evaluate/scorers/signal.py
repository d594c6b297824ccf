"""Signal-level distances computed here: SI-SDR, mel distance, multi-resolution STFT distance.

The spectral ones use the project's one STFT (`losses.spectral`), at fixed settings, jitted; both
signals are first cut to a whole number of `TRIM_SAMPLES` (0.5 s) so that few lengths compile."""
from __future__ import annotations

import functools

import numpy as np

from speechvae_jax.losses import spectral

# Multi-resolution STFT distance: the training loss's FFT sizes (hop = FFT/4), no perceptual weighting.
MRSTFT_FFT_SIZES = (2048, 1024, 512, 256, 128, 64, 32)
TRIM_SAMPLES = 8000


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR in dB of est [N] against ref [N] (both made zero-mean, float64)."""
    ref = np.asarray(ref, np.float64) - np.mean(ref)
    est = np.asarray(est, np.float64) - np.mean(est)
    energy = np.dot(ref, ref)
    if energy == 0:
        raise ValueError("SI-SDR: reference is silent")
    target = (np.dot(est, ref) / energy) * ref
    noise = est - target
    return float(10 * np.log10(np.dot(target, target) / max(np.dot(noise, noise), 1e-20)))


@functools.cache
def _distances_fn():
    import jax


    return jax.jit(lambda x, y: (spectral.mel_distance(x, y), spectral.multi_resolution_stft_loss(
        x, y, MRSTFT_FFT_SIZES, perceptual_weighting=False)))


def spectral_distances(ref: np.ndarray, est: np.ndarray) -> dict:
    """{"mel_distance", "mrstft_distance"} of est [N] against ref [N] (float32, 16 kHz; both cut
    to a multiple of TRIM_SAMPLES when longer than that)."""
    n = len(ref) if len(ref) < TRIM_SAMPLES else len(ref) // TRIM_SAMPLES * TRIM_SAMPLES
    x = np.asarray(est, np.float32)[None, :n]
    y = np.asarray(ref, np.float32)[None, :n]
    mel, mrstft = _distances_fn()(x, y)
    return {"mel_distance": float(mel), "mrstft_distance": float(mrstft)}
