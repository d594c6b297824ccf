"""Discriminators: multi-period (MPD), multi-scale sub-band CQT, multi-resolution STFT.

Every sub-discriminator maps audio [B, N] to `(logits, feature_maps)`: logits float32 (any shape
[B, ...]), feature_maps a list of the activations after each hidden layer. `Discriminators(cfg)`
concatenates the lists of all enabled families (order: mpd, cqt, stft).
"""
import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from speechvae_jax.losses.spectral import stft

_F32 = jnp.float32


def _conv2d(features, kernel, strides=(1, 1), dilation=(1, 1)):
    """"Same"-padded 2-D conv over [B, time, freq/period, C], float32."""
    pad = [((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2) for k, d in zip(kernel, dilation)]
    return nn.Conv(features, kernel, strides=strides, kernel_dilation=dilation, padding=pad,
                   dtype=_F32, param_dtype=_F32)


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: audio folded to [B, N / p, p]; (5, 1) convs with stride 3."""
    period: int
    channels: Sequence[int] = (32, 128, 512, 1024, 1024)

    @nn.compact
    def __call__(self, audio):
        x = jnp.asarray(audio, _F32)
        pad = -x.shape[1] % self.period
        if pad:
            x = jnp.pad(x, ((0, 0), (0, pad)), mode="reflect")
        x = x.reshape(x.shape[0], -1, self.period, 1)
        fmaps = []
        for i, c in enumerate(self.channels):
            stride = 3 if i < len(self.channels) - 1 else 1
            x = nn.leaky_relu(_conv2d(c, (5, 1), (stride, 1))(x), 0.1)
            fmaps.append(x)
        x = _conv2d(1, (3, 1))(x)
        fmaps.append(x)
        return x.reshape(x.shape[0], -1), fmaps


@functools.lru_cache(maxsize=None)
def halfband_interpolator(half_width: int = 16) -> np.ndarray:
    """Hann-windowed sinc taps [2 * half_width] giving x at n + 1/2 from x[n - hw + 1 .. n + hw]."""
    offsets = np.arange(-half_width + 1, half_width + 1)
    pos = offsets - 0.5
    window = 0.5 + 0.5 * np.cos(np.pi * pos / (half_width + 0.5))
    return (np.sinc(pos) * window).astype(np.float32)


@functools.lru_cache(maxsize=None)
def lowpass_half(num_taps: int = 63) -> np.ndarray:
    """Linear-phase low-pass FIR [num_taps] at a quarter of the sample rate (anti-alias before /2)."""
    n = np.arange(num_taps) - (num_taps - 1) / 2
    taps = 0.5 * np.sinc(0.5 * n) * np.kaiser(num_taps, 8.0)
    return (taps / taps.sum()).astype(np.float32)


def _fir(x, taps, stride=1, padding=None):
    """Correlate x [B, L] with taps [K] (float32); padding defaults to "same"."""
    k = len(taps)
    padding = padding or (k // 2, k - 1 - k // 2)
    y = jax.lax.conv_general_dilated(x[:, :, None], jnp.asarray(taps)[:, None, None], (stride,), [padding],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y[:, :, 0]


def upsample2(x):
    """Band-limited 2x upsampling: x [B, L] -> [B, 2L] (even samples are x, odd ones sinc-interpolated)."""
    taps = halfband_interpolator()
    hw = len(taps) // 2
    half = _fir(x, taps, padding=(hw - 1, hw))
    return jnp.stack([x, half], axis=-1).reshape(x.shape[0], -1)


@functools.lru_cache(maxsize=None)
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
            x = _fir(x, lowpass_half(), stride=2)
    return jnp.concatenate(octaves[::-1], axis=-1)


class CQTDiscriminator(nn.Module):
    """One scale of the sub-band CQT discriminator (BigVGAN-v2 layout).

    audio [B, N] at `sample_rate` -> 2x upsampled -> CQT (real, imag as 2 channels) [B, frames, bins, 2];
    a (3, 9) conv per octave band, then (3, 9) convs (frequency stride 2, time dilations), a (3, 3) conv,
    LeakyReLU(0.1) after each (these are the feature maps), and a (3, 3) conv to 1 logit channel.
    """
    hop: int
    bins_per_octave: int
    sample_rate: int = 16000
    n_octaves: int = 8
    fmin: float = 32.7
    filters: int = 32
    max_filters: int = 1024
    filters_scale: int = 1
    dilations: Sequence[int] = (1, 2, 4)

    @nn.compact
    def __call__(self, audio):
        x = upsample2(jnp.asarray(audio, _F32))
        x = jnp.pad(x, ((0, 0), (0, -x.shape[1] % self.hop)))
        z = cqt(x, 2 * self.sample_rate, self.hop, self.fmin, self.n_octaves, self.bins_per_octave)
        z = jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)
        bpo = self.bins_per_octave
        z = jnp.concatenate([_conv2d(2, (3, 9))(z[:, :, i * bpo:(i + 1) * bpo])
                             for i in range(self.n_octaves)], axis=2)
        fmaps = []
        z = nn.leaky_relu(_conv2d(self.filters, (3, 9))(z), 0.1)
        fmaps.append(z)
        for i, d in enumerate(self.dilations):
            ch = min(self.filters_scale ** (i + 1) * self.filters, self.max_filters)
            z = nn.leaky_relu(_conv2d(ch, (3, 9), (1, 2), (d, 1))(z), 0.1)
            fmaps.append(z)
        ch = min(self.filters_scale ** (len(self.dilations) + 1) * self.filters, self.max_filters)
        z = nn.leaky_relu(_conv2d(ch, (3, 3))(z), 0.1)
        fmaps.append(z)
        return _conv2d(1, (3, 3))(z), fmaps


class STFTDiscriminator(nn.Module):
    """One resolution of the STFT discriminator: complex STFT (real, imag channels) [B, frames, bins, 2];
    a (3, 9) conv, three (3, 9) convs with frequency stride 2 and time dilations 1, 2, 4, a (3, 3) conv
    (LeakyReLU(0.2) after each) and a (3, 3) conv to 1 logit channel."""
    n_fft: int
    channels: int = 32

    @nn.compact
    def __call__(self, audio):
        spec = stft(audio, self.n_fft, self.n_fft // 4)
        x = jnp.stack([jnp.real(spec), jnp.imag(spec)], axis=-1)
        fmaps = []
        x = nn.leaky_relu(_conv2d(self.channels, (3, 9))(x), 0.2)
        fmaps.append(x)
        for d in (1, 2, 4):
            x = nn.leaky_relu(_conv2d(self.channels, (3, 9), (1, 2), (d, 1))(x), 0.2)
            fmaps.append(x)
        x = nn.leaky_relu(_conv2d(self.channels, (3, 3))(x), 0.2)
        fmaps.append(x)
        return _conv2d(1, (3, 3))(x), fmaps


class Discriminators(nn.Module):
    """All enabled sub-discriminators of `cfg` (the model.discriminators ConfigDict).

    audio [B, N] -> list of (logits float32, feature_maps); MPD first (one per period), then the CQT
    scales, then the STFT resolutions.
    """
    cfg: ConfigDict

    @nn.compact
    def __call__(self, audio):
        cfg = self.cfg
        subs = []
        if cfg.mpd.enabled:
            subs += [PeriodDiscriminator(p, tuple(cfg.mpd.channels), name=f"mpd_{p}") for p in cfg.mpd.periods]
        if cfg.cqt.enabled:
            c = cfg.cqt
            if len(c.hop_lengths) != len(c.bins_per_octave):
                raise ValueError("model.discriminators.cqt: hop_lengths and bins_per_octave differ in length")
            subs += [CQTDiscriminator(h, b, c.sample_rate, c.n_octaves, c.fmin, c.filters, c.max_filters,
                                      c.filters_scale, tuple(c.dilations), name=f"cqt_{i}")
                     for i, (h, b) in enumerate(zip(c.hop_lengths, c.bins_per_octave))]
        if cfg.stft.enabled:
            subs += [STFTDiscriminator(n, cfg.stft.channels, name=f"stft_{n}") for n in cfg.stft.fft_sizes]
        if not subs:
            raise ValueError("model.discriminators: no sub-discriminator enabled (mpd, cqt, stft)")
        return [sub(audio) for sub in subs]
