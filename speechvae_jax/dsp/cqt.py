"""Multirate constant-Q transforms in JAX (the sub-band CQT discriminator's front end): this
project's own design (`cqt`) and nnAudio's CQT2010v2 as BigVGAN-v2 computes it (`release_cqt`)."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from speechvae_jax.dsp.filters import correlate, decimate2, firwin2_lowpass


@functools.cache
def cqt_kernels(sample_rate: float, fmin: float, n_octaves: int, bins_per_octave: int):
    """Complex kernels of the top octave: (real, imag) each [K, bins_per_octave], K a power of two.

    Bin k has centre f_k = fmin * 2**(n_octaves - 1 + k / bpo), Q = 1 / (2**(1/bpo) - 1), length
    ceil(Q * sr / f_k), a Hann window normalised to unit L1 norm, centred in K samples. Lower octaves
    reuse these kernels on the signal decimated by 2 per octave.
    """
    q = 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)
    freqs = fmin * 2.0 ** (n_octaves - 1 + np.arange(bins_per_octave) / bins_per_octave)
    if freqs[-1] >= sample_rate / 2:
        raise ValueError(f"CQT top bin {freqs[-1]:.0f} Hz is above Nyquist of {sample_rate} Hz")
    lengths = np.ceil(q * sample_rate / freqs).astype(int)
    size = int(2 ** math.ceil(math.log2(lengths.max())))
    kernels = np.zeros((size, bins_per_octave), np.complex128)
    for k, (f, n) in enumerate(zip(freqs, lengths)):
        t = np.arange(n) - (n - 1) / 2
        win = np.hanning(n)
        start = (size - n) // 2
        kernels[start:start + n, k] = win / win.sum() * np.exp(2j * np.pi * f * t / sample_rate)
    return kernels.real.astype(np.float32), kernels.imag.astype(np.float32)


def cqt(x, sample_rate: float, hop: int, fmin: float, n_octaves: int, bins_per_octave: int):
    """Multirate constant-Q transform: x [B, L] -> complex64 [B, L // hop, n_octaves * bpo], low to high.

    Octave o (0 = top) convolves the signal decimated by 2**o with the top-octave kernels at hop
    hop / 2**o, so every octave has the same frame count. L must be a multiple of hop, and hop of
    2**(n_octaves - 1).
    """
    if hop % 2 ** (n_octaves - 1) or x.shape[1] % hop:
        raise ValueError(f"cqt: hop {hop} must be divisible by 2**{n_octaves - 1} and length {x.shape[1]} by hop")
    real, imag = cqt_kernels(float(sample_rate), float(fmin), n_octaves, bins_per_octave)
    kernel = jnp.asarray(np.concatenate([real, imag], axis=1))[:, None, :]  # [K, 1, 2 * bpo]
    size = kernel.shape[0]
    octaves = []
    for o in range(n_octaves):
        h = hop // 2 ** o
        y = jax.lax.conv_general_dilated(x[:, :, None], kernel, (h,), [(size // 2, size // 2 - 1)],
                                         dimension_numbers=("NWC", "WIO", "NWC"))
        y = y[:, : x.shape[1] // h]
        octaves.append(jax.lax.complex(y[..., :bins_per_octave], y[..., bins_per_octave:]))
        if o < n_octaves - 1:
            x = decimate2(x)
    return jnp.concatenate(octaves[::-1], axis=-1)


@functools.cache
def release_cqt_kernels(sample_rate: float, fmin: float, n_bins: int, bins_per_octave: int):
    """Top-octave kernels of nnAudio's `CQT2010v2` (the BigVGAN-v2 CQT discriminator's front end).

    Returns (real [K, bpo], imag [K, bpo], lengths [n_bins], top_fmin): bin k of the top octave has
    centre top_fmin * 2**(k / bpo), a periodic Hann window of ceil(Q * sr / f) samples times
    exp(2j pi f n / sr) / length for n from -floor(len/2), normalised to unit L1 norm and centred in
    K = next power of two samples (odd lengths one sample to the left). `lengths` (all bins, at
    `sample_rate`) scale the output ("librosa" normalisation).
    """
    q = 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)
    n_octaves = math.ceil(n_bins / bins_per_octave)
    remainder = n_bins % bins_per_octave
    top = fmin * 2.0 ** (n_octaves - 1)
    fmax_t = top * 2.0 ** (((remainder or bins_per_octave) - 1) / bins_per_octave)
    top = fmax_t / 2.0 ** (1 - 1 / bins_per_octave)
    if fmax_t > sample_rate / 2:
        raise ValueError(f"CQT top bin {fmax_t:.0f} Hz is above Nyquist of {sample_rate} Hz")
    n_top = min(bins_per_octave, n_bins)
    freqs = top * 2.0 ** (np.arange(n_top) / bins_per_octave)
    lengths = np.ceil(q * sample_rate / freqs)
    size = int(2 ** math.ceil(math.log2(lengths.max())))
    kernels = np.zeros((n_top, size), np.complex128)
    for k, (f, n) in enumerate(zip(freqs, lengths.astype(int))):
        start = math.ceil(size / 2 - n / 2) - (n % 2)
        win = scipy.signal.get_window("hann", n, fftbins=True)
        sig = win * np.exp(np.arange(-(n // 2) - (n % 2), n // 2) * 2j * np.pi * f / sample_rate) / n
        kernels[k, start:start + n] = sig / np.abs(sig).sum()
    kernels = kernels.astype(np.complex64).T
    all_lengths = np.ceil(q * sample_rate / (fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)))
    return kernels.real.copy(), kernels.imag.copy(), all_lengths.astype(np.float32), top


def _early_downsample_count(sample_rate: float, hop: int, fmax_t: float, q: float, n_octaves: int) -> int:
    """How many times nnAudio halves the rate before the CQT (librosa's rule), usually 0 here."""
    cutoff = fmax_t * (1 + 0.5 * 1.5 / q)
    by_band = max(0, int(np.ceil(np.log2(0.85 * (sample_rate // 2) / cutoff)) - 1) - 1)
    by_hop = max(0, int(np.ceil(np.log2(hop))) - n_octaves + 1)
    return min(by_band, by_hop)


def release_cqt(x, sample_rate: int, hop: int, n_bins: int, bins_per_octave: int, fmin: float = 32.70):
    """nnAudio `CQT2010v2(sr, hop, fmin, n_bins, bpo, pad_mode="constant", output_format="Complex")`.

    x [B, L] -> complex64 [B, L // hop + 1, n_bins] (frames, bins low to high; the imaginary part
    has nnAudio's sign). Per octave: zero padding by K // 2, strided correlation with the top-octave
    kernels; between octaves a 256-tap firwin2 half-band low-pass and decimation by 2; output times
    sqrt(kernel length) per bin.
    """
    real, imag, lengths, top = release_cqt_kernels(float(sample_rate), float(fmin), n_bins, bins_per_octave)
    q = 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)
    n_octaves = math.ceil(n_bins / bins_per_octave)
    fmax_t = top * 2.0 ** ((real.shape[1] - 1) / bins_per_octave)
    x = jnp.asarray(x, jnp.float32)
    factor = 2 ** _early_downsample_count(sample_rate, hop, fmax_t, q, n_octaves)
    if factor > 1:
        taps = firwin2_lowpass(1.0 / factor)
        x = correlate(x, taps, stride=factor, padding=((len(taps) - 1) // 2,) * 2)
        hop //= factor
        real, imag, lengths, _ = release_cqt_kernels(sample_rate / factor, float(fmin), n_bins, bins_per_octave)
    kernel = jnp.asarray(np.concatenate([real, -imag], axis=1))  # [K, 2 * bpo]
    size, nb = kernel.shape[0], real.shape[1]
    half_band = firwin2_lowpass(0.5, transition=0.001)
    octaves = []
    for o in range(n_octaves):
        h = hop // 2 ** o
        if o:
            x = correlate(x, half_band, stride=2, padding=((len(half_band) - 1) // 2,) * 2)
        # the strided correlation as gathered frames times the kernels: its gradient is a scatter-add,
        # 2-3x cheaper in XLA:CPU than the transpose of a strided one-channel convolution
        padded = jnp.pad(x, ((0, 0), (size // 2, size // 2)))
        starts = np.arange(1 + (padded.shape[1] - size) // h) * h
        y = padded[:, starts[:, None] + np.arange(size)] @ kernel                     # [B, frames, 2 * bpo]
        octaves.append(jax.lax.complex(y[..., :nb], y[..., nb:]))
    z = jnp.concatenate(octaves[::-1], axis=-1)[..., -n_bins:]
    return z * (factor * jnp.sqrt(jnp.asarray(lengths)))
