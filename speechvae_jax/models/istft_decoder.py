"""Frame-rate decoder with an inverse-STFT head (Vocos style): latent [B, T, L] -> waveform [B, T * hop].

conv(7) at the latent rate to `dim` channels, a learned `upsample`-fold upsampling to the STFT frame
rate (hop / upsample samples per frame), LayerNorm, ConvNeXt blocks, LayerNorm, and a linear head
giving log-magnitude and phase of the STFT bins; one `dsp.spectral.istft` makes the waveform, tanh
bounds it to (-1, 1). Every layer runs at the frame rate, so a step costs a small fraction of a
sample-rate upsampling stack.

The two lowest bins (DC and the first, below 16000 / n_fft Hz) are held at zero: they are the only
bins whose Hann-windowed frame has a nonzero sum, so every synthesis frame then sums to zero and the
output carries no DC offset (the A-weighted spectral loss cannot see one, and speech has nothing there).
"""
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from speechvae_jax.dsp.spectral import istft
from speechvae_jax.models.layers import SubPixelUpsample, conv1d

MAX_LOG_MAGNITUDE = math.log(100.0)  # magnitudes are capped at 100 (Vocos)
ZERO_BINS = 2                        # DC and the first bin are not predicted (module docstring)


class ConvNeXtBlock(nn.Module):
    """x + gamma * W2 GELU(W1 LN(dwconv_k(x))), gamma a per-channel layer scale. [B, T, C] -> [B, T, C]."""
    intermediate: int
    kernel_size: int = 7
    layer_scale: float = 0.1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        pad = (self.kernel_size - 1) // 2
        y = nn.Conv(c, (self.kernel_size,), padding=[(pad, self.kernel_size - 1 - pad)], feature_group_count=c,
                    dtype=self.dtype, param_dtype=jnp.float32, name="dwconv")(x)
        y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32)(y)
        y = nn.Dense(self.intermediate, dtype=self.dtype, param_dtype=jnp.float32)(y)
        y = nn.gelu(y)
        y = nn.Dense(c, dtype=self.dtype, param_dtype=jnp.float32)(y)
        gamma = self.param("gamma", nn.initializers.constant(self.layer_scale), (c,), jnp.float32)
        return x + gamma.astype(self.dtype) * y


class ISTFTDecoder(nn.Module):
    """`model.decoder.kind = "istft"`: z [B, T, L] -> audio float32 [B, T * hop] in (-1, 1).

    The STFT has hop `hop // upsample` and window/FFT size `n_fft` (>= 2 STFT hops); frame f of the
    T * upsample frames is centred on output sample f * hop // upsample.
    """
    hop: int
    dim: int
    intermediate: int
    num_blocks: int
    upsample: int
    n_fft: int
    kernel_size: int = 7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z):
        x = frame_trunk(self, z)
        bins = self.n_fft // 2 + 1 - ZERO_BINS
        out = nn.Dense(2 * bins, dtype=jnp.float32, param_dtype=jnp.float32, name="head")(x)
        return synthesize(self, magnitude_phase(out[..., :bins], out[..., bins:]), z.shape[1])


def frame_trunk(dec: nn.Module, z):
    """The frame-rate trunk, built inside `dec`'s compact method (its fields hop, dim, intermediate,
    num_blocks, upsample, kernel_size, dtype): z [B, T, L] -> float32 [B, T * upsample, dim]."""
    x = conv1d(dec.dim, 7, dtype=dec.dtype, name="embed")(z.astype(dec.dtype))
    if dec.upsample > 1:
        x = SubPixelUpsample(dec.dim, dec.upsample, 2 * dec.upsample, dec.dtype, None, name="upsample")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=dec.dtype, param_dtype=jnp.float32)(x)
    for _ in range(dec.num_blocks):
        x = ConvNeXtBlock(dec.intermediate, dec.kernel_size, 1.0 / dec.num_blocks, dec.dtype)(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=dec.dtype, param_dtype=jnp.float32)(x)
    return x.astype(jnp.float32)


def magnitude_phase(log_mag, phase):
    """Predicted bins [B, F, n_fft // 2 + 1 - ZERO_BINS] -> complex64: capped magnitude times e^(i phase)."""
    return jnp.exp(jnp.minimum(log_mag, MAX_LOG_MAGNITUDE)) * jnp.exp(1j * phase)


def synthesize(dec: nn.Module, bins, num_frames: int):
    """complex bins above the ZERO_BINS [B, T * upsample, K] -> tanh(istft) float32 [B, num_frames * hop]."""
    spec = jnp.pad(bins, ((0, 0), (0, 0), (ZERO_BINS, 0)))
    audio = istft(spec, dec.n_fft, dec.hop // dec.upsample, length=num_frames * dec.hop)
    return jnp.tanh(audio)
