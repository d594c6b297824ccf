"""FIR filtering and fixed filters: A-weighting, half-band interpolation, anti-alias low-pass.

Filters are designed on the host in numpy (cached) and applied in float32 with XLA convolutions.
Shapes: x [B, L] waveforms, taps [K].
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

_F32 = jnp.float32


def correlate(x, taps, stride: int = 1, padding: tuple[int, int] | None = None):
    """y[n] = sum_k taps[k] x[n * stride + k - left]: x [B, L] -> float32 [B, L'].

    padding (left, right) defaults to "same" for stride 1: (K // 2, K - 1 - K // 2).
    """
    k = len(taps)
    padding = padding or (k // 2, k - 1 - k // 2)
    kernel = jnp.asarray(np.ascontiguousarray(taps), _F32)[:, None, None]  # [K, in=1, out=1]
    y = jax.lax.conv_general_dilated(jnp.asarray(x, _F32)[:, :, None], kernel, (stride,), [padding],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y[:, :, 0]


def convolve(x, taps):
    """Same-length FIR filtering (true convolution, zero padded): x [B, N] -> float32 [B, N]."""
    taps = np.asarray(taps)[::-1]
    k = len(taps)
    return correlate(x, taps, padding=(k // 2, k - 1 - k // 2))


@functools.cache
def a_weighting_fir(sample_rate: int = 16000, num_taps: int = 101) -> np.ndarray:
    """Linear-phase FIR approximating the IEC 61672 A-weighting curve, float32 [num_taps].

    The analog A-weighting transfer function (poles at 20.6, 107.7, 737.9 and 12194 Hz, four zeros
    at 0 Hz, normalised to 0 dB at 1 kHz) is mapped to a digital IIR by the bilinear transform; its
    magnitude response on a 512-point grid is then fitted by a least-squares FIR of `num_taps` taps.
    """
    if num_taps % 2 == 0:
        raise ValueError(f"num_taps must be odd, got {num_taps}")
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    gain_1k_db = 1.9997
    w1, w2, w3, w4 = (2.0 * np.pi * f for f in (f1, f2, f3, f4))
    num = [w4 ** 2 * 10.0 ** (gain_1k_db / 20.0), 0.0, 0.0, 0.0, 0.0]
    den = np.polymul([1.0, 2.0 * w4, w4 ** 2], [1.0, 2.0 * w1, w1 ** 2])
    den = np.polymul(np.polymul(den, [1.0, w3]), [1.0, w2])
    b, a = scipy.signal.bilinear(num, den, fs=sample_rate)
    freqs, resp = scipy.signal.freqz(b, a, worN=512, fs=sample_rate)
    taps = scipy.signal.firls(num_taps, freqs, np.abs(resp), fs=sample_rate)
    return taps.astype(np.float32)


@functools.cache
def halfband_interpolator(half_width: int = 16) -> np.ndarray:
    """Hann-windowed sinc taps [2 * half_width] giving x at n + 1/2 from x[n - hw + 1 .. n + hw]."""
    offsets = np.arange(-half_width + 1, half_width + 1)
    pos = offsets - 0.5
    window = 0.5 + 0.5 * np.cos(np.pi * pos / (half_width + 0.5))
    return (np.sinc(pos) * window).astype(np.float32)


@functools.cache
def lowpass_half(num_taps: int = 63) -> np.ndarray:
    """Linear-phase low-pass FIR [num_taps] at a quarter of the sample rate (anti-alias before /2)."""
    n = np.arange(num_taps) - (num_taps - 1) / 2
    taps = 0.5 * np.sinc(0.5 * n) * np.kaiser(num_taps, 8.0)
    return (taps / taps.sum()).astype(np.float32)


def upsample2(x):
    """Band-limited 2x upsampling: x [B, L] -> [B, 2L] (even samples are x, odd ones sinc-interpolated)."""
    taps = halfband_interpolator()
    hw = len(taps) // 2
    half = correlate(x, taps, padding=(hw - 1, hw))
    return jnp.stack([jnp.asarray(x, _F32), half], axis=-1).reshape(x.shape[0], -1)


def decimate2(x):
    """Low-pass at a quarter of the rate, then keep every other sample: x [B, L] -> [B, ceil(L / 2)]."""
    return correlate(x, lowpass_half(), stride=2)
