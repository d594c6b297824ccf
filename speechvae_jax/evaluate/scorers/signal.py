"""Signal-level figures computed here: SI-SDR, mel distance, multi-resolution STFT distance, pitch
accuracy, and two defects of one signal: its DC offset and its frame-rate comb.

The spectral ones use the project's one STFT (`dsp.spectral.stft`), at fixed settings, jitted;
signals are first cut to a whole number of `TRIM_SAMPLES` (0.5 s) so that few lengths compile.

Frame-rate comb: a decoder that repeats a pattern every latent frame (400 samples) adds a buzz whose
long-term average spectrum (LTAS) has peaks at the multiples k * 40 Hz. `frame_comb_db` is the median
over k = 2 .. 25 (80 .. 1000 Hz) of 10 log10(P(k * 40 Hz) / mean(P(k * 40 - 20 Hz), P(k * 40 + 20 Hz)))
with P the LTAS (mean |STFT|^2 over frames, Hann window of 4 frame periods = 1600 samples, hop 400, so
bins are 10 Hz apart and a tone at k * 40 Hz leaks nothing into the midpoints). About 0 dB for speech
and noise; a steady buzz at the frame rate raises it (e.g. a 40 Hz pulse train in noise: tens of dB).
The median keeps a few pitch harmonics that happen to fall on multiples of 40 Hz from moving it.

Pitch accuracy, by the project's YIN (`dsp.pitch.yin`, 10 ms hop, 60-500 Hz) on both signals: the
voicing decision error `vde` (fraction of frames voiced in exactly one of them) and, over the frames
voiced in both (at least PITCH_MIN_FRAMES), `f0_rmse_cents` (RMS of 1200 log2(f0_est / f0_ref)),
`f0_bias_cents` (its median, signed: a whole voice transposed shows here, where the RMS alone cannot
tell a shift from scatter) and `f0_corr` (Pearson correlation of log f0: a flattened intonation contour
scores near 0 even when its mean pitch is right).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.constants import LATENT_RATE, SAMPLE_RATE
from speechvae_jax.dsp.pitch import yin
from speechvae_jax.dsp.spectral import stft
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
    return jax.jit(lambda x, y: (spectral.mel_distance(x, y), spectral.multi_resolution_stft_loss(
        x, y, MRSTFT_FFT_SIZES, perceptual_weighting=False)))


PITCH_HOP = 160                        # 10 ms
PITCH_MIN_FRAMES = 10
COMB_HARMONICS = tuple(range(2, 26))   # multiples of the frame rate scored: 80 .. 1000 Hz
COMB_PERIODS_PER_WINDOW = 4            # window = 4 frame periods: bins at a quarter of the frame rate


def _trim(x: np.ndarray) -> np.ndarray:
    """x [N] float32, cut to a multiple of TRIM_SAMPLES when longer than that."""
    n = len(x) if len(x) < TRIM_SAMPLES else len(x) // TRIM_SAMPLES * TRIM_SAMPLES
    return np.asarray(x, np.float32)[:n]


@functools.cache
def _ltas_fn(n_fft: int):
    """Jitted LTAS: x [1, N] -> mean over frames of |stft(x)|^2, [1, n_fft // 2 + 1]."""
    return jax.jit(lambda x: jnp.mean(jnp.abs(stft(x, n_fft, n_fft // COMB_PERIODS_PER_WINDOW)) ** 2, axis=1))


def frame_comb_db(x: np.ndarray, frame_rate: float = LATENT_RATE, sample_rate: int = SAMPLE_RATE) -> float:
    """The frame-rate comb figure of x [N] in dB (module docstring); needs N > 4 frame periods."""
    n_fft = int(round(COMB_PERIODS_PER_WINDOW * sample_rate / frame_rate))
    x = _trim(x)
    if len(x) <= n_fft:
        raise ValueError(f"frame comb: {len(x)} samples, need more than {n_fft}")
    power = np.asarray(_ltas_fn(n_fft)(x[None]), np.float64)[0] + 1e-20
    q = COMB_PERIODS_PER_WINDOW
    ratios = [10 * np.log10(power[q * k] / (0.5 * (power[q * k - q // 2] + power[q * k + q // 2])))
              for k in COMB_HARMONICS]
    return float(np.median(ratios))


def signal_defects(x: np.ndarray) -> dict:
    """{"dc_offset": |mean of x|, "frame_comb_db": frame_comb_db(x)} of one signal x [N] (16 kHz)."""
    x = np.asarray(x, np.float64)
    return {"dc_offset": float(abs(x.mean())), "frame_comb_db": frame_comb_db(x)}


@functools.cache
def _yin_fn():
    return jax.jit(lambda x: yin(x, SAMPLE_RATE, PITCH_HOP))


def pitch_accuracy(ref: np.ndarray, est: np.ndarray) -> dict:
    """{"vde"} and, with enough frames voiced in both, {"f0_rmse_cents", "f0_bias_cents", "f0_corr"} of
    est [N] against ref [N] (16 kHz; module docstring). Both are cut to a multiple of TRIM_SAMPLES when longer."""
    y = _trim(ref)
    if len(y) <= 1024:   # YIN's frame length
        raise ValueError(f"pitch: {len(y)} samples, need more than 1024")
    x = np.asarray(est, np.float32)[:len(y)]
    f0, voiced = (np.asarray(a) for a in _yin_fn()(np.stack([y, x])))
    out = {"vde": float(np.mean(voiced[0] != voiced[1]))}
    both = voiced[0] & voiced[1]
    if both.sum() >= PITCH_MIN_FRAMES:
        log_ref, log_est = np.log2(f0[0, both].astype(np.float64)), np.log2(f0[1, both].astype(np.float64))
        cents = 1200 * (log_est - log_ref)
        out["f0_rmse_cents"] = float(np.sqrt(np.mean(cents ** 2)))
        out["f0_bias_cents"] = float(np.median(cents))
        if log_ref.std() > 0 and log_est.std() > 0:
            out["f0_corr"] = float(np.corrcoef(log_ref, log_est)[0, 1])
    return out


def spectral_distances(ref: np.ndarray, est: np.ndarray) -> dict:
    """{"mel_distance", "mrstft_distance"} of est [N] against ref [N] (float32, 16 kHz; both cut
    to a multiple of TRIM_SAMPLES when longer than that)."""
    y = _trim(ref)[None]
    x = np.asarray(est, np.float32)[None, :y.shape[1]]
    mel, mrstft = _distances_fn()(x, y)
    return {"mel_distance": float(mel), "mrstft_distance": float(mrstft)}
