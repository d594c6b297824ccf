"""Discriminators: multi-period (MPD), multi-scale sub-band CQT, multi-resolution STFT.

Every sub-discriminator maps audio [B, N] to `(logits, feature_maps)`: logits float32 (any shape
[B, ...]), feature_maps a list of the activations after each hidden layer. `Discriminators(cfg)`
concatenates the lists of all enabled families (order: mpd, cqt, stft). With `weight_norm` the MPD
and CQT layers the `bigvgan` package weight-normalises are weight-normalised; `cqt.front_end` picks
the CQT: "multirate" (this project's design) or "release" (torchaudio 2x resampling + nnAudio
CQT2010v2, as BigVGAN-v2).
"""
from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.dsp.cqt import cqt, release_cqt
from speechvae_jax.dsp.filters import resample_up, upsample2
from speechvae_jax.dsp.spectral import stft
from speechvae_jax.models.layers import Conv

_F32 = jnp.float32
CQT_FRONT_ENDS = ("multirate", "release")


def _conv2d(features, kernel, strides=(1, 1), dilation=(1, 1), weight_norm=False):
    """"Same"-padded 2-D conv over [B, time, freq/period, C], float32 (LeCun-normal init)."""
    pad = [((k - 1) * d // 2, (k - 1) * d - (k - 1) * d // 2) for k, d in zip(kernel, dilation)]
    return Conv(features, kernel, strides, dilation, pad, weight_norm, dtype=_F32)


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: audio folded to [B, N / p, p]; (5, 1) convs with stride 3."""
    period: int
    channels: Sequence[int] = (32, 128, 512, 1024, 1024)
    weight_norm: bool = False

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
            x = nn.leaky_relu(_conv2d(c, (5, 1), (stride, 1), weight_norm=self.weight_norm)(x), 0.1)
            fmaps.append(x)
        x = _conv2d(1, (3, 1), weight_norm=self.weight_norm)(x)
        fmaps.append(x)
        return x.reshape(x.shape[0], -1), fmaps


class CQTDiscriminator(nn.Module):
    """One scale of the sub-band CQT discriminator (BigVGAN-v2 layout).

    audio [B, N] at `sample_rate` -> 2x upsampled -> CQT (real, imag as 2 channels) [B, frames, bins, 2];
    a (3, 9) conv per octave band, then (3, 9) convs (frequency stride 2, time dilations), a (3, 3) conv,
    LeakyReLU(0.1) after each (these are the feature maps), and a (3, 3) conv to 1 logit channel.
    `weight_norm` applies to the dilated, (3, 3) and logit convs (as `bigvgan`; the band convs and the
    first conv are plain there).
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
    weight_norm: bool = False
    front_end: str = "multirate"  # CQT_FRONT_ENDS

    def transform(self, audio):
        """audio [B, N] -> complex64 CQT [B, frames, n_octaves * bins_per_octave] of the 2x upsampled audio."""
        sr2, bins = 2 * self.sample_rate, self.n_octaves * self.bins_per_octave
        if self.front_end == "release":
            return release_cqt(resample_up(audio, 2), sr2, self.hop, bins, self.bins_per_octave, self.fmin)
        if self.front_end != "multirate":
            raise ValueError(f"model.discriminators.cqt.front_end must be one of {CQT_FRONT_ENDS}, "
                             f"got {self.front_end!r}")
        x = upsample2(jnp.asarray(audio, _F32))
        x = jnp.pad(x, ((0, 0), (0, -x.shape[1] % self.hop)))
        return cqt(x, sr2, self.hop, self.fmin, self.n_octaves, self.bins_per_octave)

    @nn.compact
    def __call__(self, audio):
        z = self.transform(audio)
        z = jnp.stack([jnp.real(z), jnp.imag(z)], axis=-1)
        bpo = self.bins_per_octave
        z = jnp.concatenate([_conv2d(2, (3, 9))(z[:, :, i * bpo:(i + 1) * bpo])
                             for i in range(self.n_octaves)], axis=2)
        fmaps = []
        z = nn.leaky_relu(_conv2d(self.filters, (3, 9))(z), 0.1)
        fmaps.append(z)
        wn = self.weight_norm
        for i, d in enumerate(self.dilations):
            ch = min(self.filters_scale ** (i + 1) * self.filters, self.max_filters)
            z = nn.leaky_relu(_conv2d(ch, (3, 9), (1, 2), (d, 1), wn)(z), 0.1)
            fmaps.append(z)
        ch = min(self.filters_scale ** (len(self.dilations) + 1) * self.filters, self.max_filters)
        z = nn.leaky_relu(_conv2d(ch, (3, 3), weight_norm=wn)(z), 0.1)
        fmaps.append(z)
        return _conv2d(1, (3, 3), weight_norm=wn)(z), fmaps


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
        wn = cfg.get("weight_norm", False)  # absent in runs saved before it existed
        subs = []
        if cfg.mpd.enabled:
            subs += [PeriodDiscriminator(p, tuple(cfg.mpd.channels), wn, name=f"mpd_{p}") for p in cfg.mpd.periods]
        if cfg.cqt.enabled:
            c = cfg.cqt
            if len(c.hop_lengths) != len(c.bins_per_octave):
                raise ValueError("model.discriminators.cqt: hop_lengths and bins_per_octave differ in length")
            subs += [CQTDiscriminator(h, b, c.sample_rate, c.n_octaves, c.fmin, c.filters, c.max_filters,
                                      c.filters_scale, tuple(c.dilations), wn, c.get("front_end", "multirate"),
                                      name=f"cqt_{i}")
                     for i, (h, b) in enumerate(zip(c.hop_lengths, c.bins_per_octave))]
        if cfg.stft.enabled:
            subs += [STFTDiscriminator(n, cfg.stft.channels, name=f"stft_{n}") for n in cfg.stft.fft_sizes]
        if not subs:
            raise ValueError("model.discriminators: no sub-discriminator enabled (mpd, cqt, stft)")
        return [sub(audio) for sub in subs]
