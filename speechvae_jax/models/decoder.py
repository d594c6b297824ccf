"""BigVGAN generator: latent [B, T, L] -> waveform [B, T * prod(upsample_rates)] in (-1, 1).

conv(7) to `initial_channels`; per upsample rate u (kernel k): learned upsampling halving the
channels, then the mean of AMP residual blocks (one per kernel size, each with the given dilations,
SnakeBeta before every conv); SnakeBeta, conv(7) to 1 channel, tanh. `anti_alias` wraps every
SnakeBeta in BigVGAN's 2x up/down-sampling (`Activation1d`); `weight_norm` weight-normalises every
conv and upsampler, as the `bigvgan` package; `full_lengths` keeps every upsampler's whole transposed-
convolution output (T * u + u % 2 samples, as BigVGAN) and crops the waveform to T * hop at the end.
"""
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from speechvae_jax.models.layers import UPSAMPLERS, SnakeBeta, conv1d, trunk_std

INIT_STD = 0.01  # BigVGAN: N(0, 0.01^2) for upsampling, AMP and output convs; LeCun for the input conv


class AMPBlock(nn.Module):
    """For each dilation d: x += conv_k(SnakeBeta(conv_k,d(SnakeBeta(x)))). [B, T, C] -> [B, T, C]."""
    kernel_size: int
    dilations: Sequence[int]
    dtype: Any = jnp.float32
    anti_alias: bool = False
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        c, k, wn = x.shape[-1], self.kernel_size, self.weight_norm
        for d in self.dilations:
            y = SnakeBeta(self.dtype, self.anti_alias)(x)
            y = conv1d(c, k, dilation=d, init_std=INIT_STD, weight_norm=wn, dtype=self.dtype)(y)
            y = SnakeBeta(self.dtype, self.anti_alias)(y)
            y = conv1d(c, k, init_std=INIT_STD, weight_norm=wn, dtype=self.dtype)(y)
            x = x + y
        return x


class Decoder(nn.Module):
    initial_channels: int
    upsample_rates: Sequence[int]
    upsample_kernel_sizes: Sequence[int]
    resblock_kernel_sizes: Sequence[int]
    resblock_dilations: Sequence[int]
    upsample: str = "subpixel"
    dtype: Any = jnp.float32
    trunk_init: str = "release"   # layers.TRUNK_INITS
    anti_alias: bool = False
    weight_norm: bool = False
    full_lengths: bool = False

    @nn.compact
    def __call__(self, z):
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"decoder.upsample must be one of {sorted(UPSAMPLERS)}, got {self.upsample!r}")
        up_cls = UPSAMPLERS[self.upsample]
        std = trunk_std(self.trunk_init, INIT_STD)
        aa, wn = self.anti_alias, self.weight_norm
        x = conv1d(self.initial_channels, 7, weight_norm=wn, dtype=self.dtype)(z.astype(self.dtype))
        for i, (u, k) in enumerate(zip(self.upsample_rates, self.upsample_kernel_sizes)):
            ch = self.initial_channels // 2 ** (i + 1)
            x = up_cls(ch, u, k, self.dtype, std, wn, self.full_lengths)(x)
            x = sum(AMPBlock(rk, tuple(self.resblock_dilations), self.dtype, aa, wn)(x)
                    for rk in self.resblock_kernel_sizes) / len(self.resblock_kernel_sizes)
        x = SnakeBeta(self.dtype, aa)(x)
        x = conv1d(1, 7, init_std=std, weight_norm=wn, dtype=self.dtype)(x)
        return jnp.tanh(x[:, : z.shape[1] * math.prod(self.upsample_rates), 0].astype(jnp.float32))
