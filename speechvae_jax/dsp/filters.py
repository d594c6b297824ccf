"""FIR filtering and fixed filters: A-weighting, half-band interpolation, anti-alias low-pass.

Filters are designed on the host in numpy (cached) and applied in float32 with XLA convolutions.
Shapes: x [B, L] waveforms, taps [K].
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

_F32 = jnp.float32


def _direct_correlate(x, taps: np.ndarray, stride: int, padding: tuple[int, int]):
    kernel = jnp.asarray(np.ascontiguousarray(taps), _F32)[:, None, None]  # [K, in=1, out=1]
    y = jax.lax.conv_general_dilated(x[:, :, None], kernel, (stride,), [padding],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y[:, :, 0]


def correlate(x, taps, stride: int = 1, padding: tuple[int, int] | None = None):
    """y[n] = sum_k taps[k] x[n * stride + k - left]: x [B, L] -> float32 [B, L'].

    padding (left, right) defaults to "same" for stride 1: (K // 2, K - 1 - K // 2). The gradient
    w.r.t. x is written out as the same kind of correlation (the zero-stuffed cotangent with the
    reversed taps): XLA:CPU ran the autodiff transpose of a strided one-channel convolution, the
    CQT's 256-tap half-band decimator, about 18x slower than its forward.
    """
    taps = np.asarray(taps)
    k = len(taps)
    padding = tuple(padding or (k // 2, k - 1 - k // 2))

    @jax.custom_vjp
    def apply(x):
        return _direct_correlate(x, taps, stride, padding)

    def forward(x):
        return apply(x), x.shape[1]

    def backward(length, g):
        # d x_padded[m] = sum_n g[n] taps[m - n stride]: a full convolution of the zero-stuffed g
        stuffed = jnp.zeros((g.shape[0], (g.shape[1] - 1) * stride + 1), _F32).at[:, ::stride].set(g)
        full = _direct_correlate(stuffed, taps[::-1], 1, (k - 1, k - 1))
        padded_length = padding[0] + length + padding[1]
        full = jnp.pad(full, ((0, 0), (0, max(0, padded_length - full.shape[1]))))
        return (full[:, padding[0]:padding[0] + length],)

    apply.defvjp(forward, backward)
    return apply(jnp.asarray(x, _F32))


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


@functools.cache
def kaiser_sinc_lowpass(cutoff: float, half_width: float, kernel_size: int) -> np.ndarray:
    """Kaiser-windowed sinc low-pass taps [kernel_size], summing to 1 (BigVGAN's alias-free filters).

    cutoff and half_width are in cycles per sample (0.5 = Nyquist). The Kaiser beta follows Kaiser's
    formula for the attenuation A = 2.285 (K/2 - 1) pi (4 half_width) + 7.95 dB; an even kernel is
    centred between two samples.
    """
    half = kernel_size // 2
    atten = 2.285 * (half - 1) * np.pi * 4 * half_width + 7.95
    if atten > 50.0:
        beta = 0.1102 * (atten - 8.7)
    elif atten >= 21.0:
        beta = 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21.0)
    else:
        beta = 0.0
    t = np.arange(-half, half) + 0.5 if kernel_size % 2 == 0 else np.arange(kernel_size) - half
    taps = 2 * cutoff * np.kaiser(kernel_size, beta) * np.sinc(2 * cutoff * t)
    return (taps / taps.sum()).astype(np.float32)


def _edge_taps(x, taps, offsets, pad: int, length: int):
    """sum_j taps[j] * x_edge[n + offsets[j]] for n < length, x [B, T, C] edge-padded by `pad` each side."""
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="edge")
    return sum(float(w) * xp[:, pad + o: pad + o + length] for w, o in zip(taps, offsets))


def _edge_pad_adjoint(g, left: int, length: int):
    """Transpose of edge padding: g [B, left + length + right, C] -> [B, length, C], each pad summed onto its edge."""
    core = g[:, left:left + length]
    return core.at[:, 0].add(g[:, :left].sum(1)).at[:, -1].add(g[:, left + length:].sum(1))


def _upsample2_phases(kernel_size: int):
    """Per output phase r of the 2x upsampler: (taps times 2, input offsets): out[2n + r] = sum w x[n + o]."""
    taps = kaiser_sinc_lowpass(0.25, 0.3, kernel_size)
    # Output 2n + r reads x[n + (r + 2 * pad_left - k) / 2] for taps k of the matching parity.
    pad_left = (kernel_size - 2) // 2 + 2 * (kernel_size // 2 - 1)
    phases = []
    for r in (0, 1):
        ks = [k for k in range(kernel_size) if (r + pad_left - k) % 2 == 0]
        phases.append((2.0 * taps[ks], [(r + pad_left - k) // 2 - (kernel_size // 2 - 1) for k in ks]))
    return phases


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def alias_free_upsample2(x, kernel_size: int = 12):
    """2x upsampling with a Kaiser-sinc low-pass (BigVGAN `UpSample1d(2, 12)`): x [B, T, C] -> [B, 2T, C].

    Equal to edge-padding by K/2 - 1, a stride-2 transposed convolution with the taps times 2, and a
    crop; computed per output phase as shifted multiply-adds (XLA fuses them; no zero-stuffing). The
    gradient is the explicit adjoint (shifted multiply-adds again): XLA:CPU ran the autodiff transpose
    of the shifted slices (pads and adds) 5 to 8 times slower (docs/performance.md).
    """
    t = x.shape[1]
    outs = [_edge_taps(x, w, offs, kernel_size, t) for w, offs in _upsample2_phases(kernel_size)]
    return jnp.stack(outs, axis=2).reshape(x.shape[0], 2 * t, x.shape[2])


def _upsample2_fwd(x, kernel_size):
    return alias_free_upsample2(x, kernel_size), x.shape[1]


def _upsample2_bwd(kernel_size, t, g):
    """g [B, 2T, C] -> [B, T, C]: g_edge[i] = sum_{r, j} w_rj g[2 (i - K - o_rj) + r], then the edge adjoint."""
    k = kernel_size
    g = g.reshape(g.shape[0], t, 2, g.shape[2])
    acc = 0.0
    for r, (taps, offs) in enumerate(_upsample2_phases(k)):
        gz = jnp.pad(g[:, :, r], ((0, 0), (2 * k, 2 * k), (0, 0)))
        acc = acc + sum(float(w) * gz[:, k - o: k - o + t + 2 * k] for w, o in zip(taps, offs))
    return (_edge_pad_adjoint(acc, k, t),)


alias_free_upsample2.defvjp(_upsample2_fwd, _upsample2_bwd)


def _downsample2_pads(kernel_size: int) -> tuple[int, int]:
    return kernel_size // 2 - (1 - kernel_size % 2), kernel_size // 2


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def alias_free_downsample2(x, kernel_size: int = 12):
    """Kaiser-sinc low-pass and stride 2 (BigVGAN `DownSample1d(2, 12)`): x [B, T, C] -> [B, ceil(T / 2), C].

    y[m] = sum_k taps[k] x[2m + k - (K/2 - 1)] with the signal edge-padded. Explicit adjoint as for
    `alias_free_upsample2`.
    """
    taps = kaiser_sinc_lowpass(0.25, 0.3, kernel_size)
    left, right = _downsample2_pads(kernel_size)
    xp = jnp.pad(x, ((0, 0), (left, right), (0, 0)), mode="edge")
    n = (xp.shape[1] - kernel_size) // 2 + 1
    return sum(float(w) * xp[:, k: k + 2 * n: 2] for k, w in enumerate(taps))


def _downsample2_fwd(x, kernel_size):
    return alias_free_downsample2(x, kernel_size), x.shape[1]


def _downsample2_bwd(kernel_size, t, g):
    """g [B, M, C] -> [B, T, C]: the padded signal's gradient at 2q + r is sum_i taps[2i + r] g[q - i],
    built per parity from shifted slices of the zero-padded g, then the edge adjoint."""
    k = kernel_size
    taps = kaiser_sinc_lowpass(0.25, 0.3, k)
    left, right = _downsample2_pads(k)
    padded = t + left + right
    q = -(-padded // 2)
    gz = jnp.pad(g, ((0, 0), (k // 2, k), (0, 0)))
    phases = [sum(float(taps[2 * i + r]) * gz[:, k // 2 - i: k // 2 - i + q] for i in range((k - r + 1) // 2))
              for r in (0, 1)]
    gxp = jnp.stack(phases, axis=2).reshape(g.shape[0], 2 * q, g.shape[2])[:, :padded]
    return (_edge_pad_adjoint(gxp, left, t),)


alias_free_downsample2.defvjp(_downsample2_fwd, _downsample2_bwd)


@functools.cache
def sinc_resample_kernel(orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """Hann-windowed sinc kernel [new, K] of rational resampling by new / orig (coprime), as torchaudio.

    Phase j of output sample n * new + j reads the input around n * orig; the low-pass cut-off is
    rolloff * min(orig, new) / 2 cycles per input sample.
    """
    base = min(orig, new) * rolloff
    half = math.ceil(width * orig / base)
    idx = np.arange(-half, half + orig, dtype=np.float64)[None] / orig
    t = (-np.arange(new, dtype=np.float64)[:, None] / new + idx) * base
    t = np.clip(t, -width, width)
    window = np.cos(t * np.pi / width / 2) ** 2
    t = t * np.pi
    kernel = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t)) * window * base / orig
    return kernel.astype(np.float32)


def resample_up(x, factor: int = 2):
    """Sinc upsampling by an integer factor as `torchaudio.transforms.Resample(sr, factor * sr)`.

    x [B, L] -> float32 [B, factor * L] (zero-padded at the edges).
    """
    kernel = sinc_resample_kernel(1, factor)
    half = (kernel.shape[1] - 1) // 2
    w = jnp.asarray(kernel.T[:, None, :])  # [K, in=1, out=factor]
    y = jax.lax.conv_general_dilated(jnp.asarray(x, _F32)[:, :, None], w, (1,), [(half, half + 1)],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y.reshape(x.shape[0], -1)[:, : factor * x.shape[1]]


@functools.cache
def firwin2_lowpass(band_center: float, num_taps: int = 256, transition: float = 0.03) -> np.ndarray:
    """Frequency-sampling FIR low-pass [num_taps] (`scipy.signal.firwin2`), pass up to band_center /
    (1 + transition) and stop from band_center * (1 + transition), frequencies relative to Nyquist
    (nnAudio's CQT anti-alias filter)."""
    edges = [0.0, band_center / (1 + transition), band_center * (1 + transition), 1.0]
    return scipy.signal.firwin2(num_taps, edges, [1.0, 1.0, 0.0, 0.0]).astype(np.float32)
