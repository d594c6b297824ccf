"""DAC-style convolutional encoder: waveform [B, N] -> features [B, T, C] -> stats [B, T, 2L].

conv(7) to d_model, then one block per stride (channels double): residual units with Snake and
dilations (1, 3, 9), Snake, strided conv (kernel 2 * stride). A final Snake (and, with `final_conv`,
DAC's closing conv k=3 at the same width) gives the features; the last layer `last` (a 1x1
projection, nn.Dense, never weight-normed: Stable Audio Tools' `proj_out`) maps them to mean and
scale. `weight_norm` weight-normalises every conv but `last`, as DAC's `WNConv1d`.
"""
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from speechvae_jax.models.layers import Snake, conv1d, kernel_init, trunk_std

INIT_STD = 0.02  # DAC: every conv kernel N(0, 0.02^2), biases 0


def posterior_bias_init(scale_bias_init: float):
    """Bias init of an encoder's `last` layer [2L]: zeros for the mean half, `scale_bias_init` for the
    scale half (initial sigma = softplus(scale_bias_init) + 1e-4)."""
    def init(key, shape, dtype=jnp.float32):
        del key
        half = shape[0] // 2
        return jnp.concatenate([jnp.zeros(half), jnp.full(shape[0] - half, scale_bias_init)]).astype(dtype)
    return init


class ResidualUnit(nn.Module):
    """x + conv1(Snake(conv7_dilated(Snake(x)))): [B, T, C] -> [B, T, C]."""
    dilation: int
    dtype: Any = jnp.float32
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        y = Snake(self.dtype)(x)
        y = conv1d(c, 7, dilation=self.dilation, init_std=INIT_STD, weight_norm=self.weight_norm, dtype=self.dtype)(y)
        y = Snake(self.dtype)(y)
        y = conv1d(c, 1, init_std=INIT_STD, weight_norm=self.weight_norm, dtype=self.dtype)(y)
        return x + y


class EncoderBlock(nn.Module):
    """Residual units at the input width, then a strided conv: [B, T, C] -> [B, T / stride, features]."""
    features: int
    stride: int
    dilations: Sequence[int]
    dtype: Any = jnp.float32
    trunk_init: str = "release"
    weight_norm: bool = False

    @nn.compact
    def __call__(self, x):
        for d in self.dilations:
            x = ResidualUnit(d, self.dtype, self.weight_norm)(x)
        x = Snake(self.dtype)(x)
        pad = math.ceil(self.stride / 2)
        return conv1d(self.features, 2 * self.stride, stride=self.stride, padding=[(pad, pad)],
                      init_std=trunk_std(self.trunk_init, INIT_STD), weight_norm=self.weight_norm,
                      dtype=self.dtype)(x)


class Encoder(nn.Module):
    """`features(audio [B, N]) -> [B, ceil(N / hop), d_model * 2**len(strides)]`, `head(h) -> [B, T, 2L]`."""
    d_model: int
    strides: Sequence[int]
    dilations: Sequence[int]
    latent_dim: int
    dtype: Any = jnp.float32
    trunk_init: str = "release"   # layers.TRUNK_INITS
    scale_bias_init: float = 0.0  # initial bias of the scale half of `last`: sigma = softplus(b) + 1e-4
    final_conv: bool = False      # DAC's conv k=3 (C -> C) after the final Snake
    weight_norm: bool = False     # every conv but `last`

    def setup(self):
        std = trunk_std(self.trunk_init, INIT_STD)
        wn = self.weight_norm
        self.conv_in = conv1d(self.d_model, 7, init_std=std, weight_norm=wn, dtype=self.dtype)
        self.blocks = [EncoderBlock(self.d_model * 2 ** (i + 1), s, tuple(self.dilations), self.dtype, self.trunk_init,
                                    wn) for i, s in enumerate(self.strides)]
        self.act_out = Snake(self.dtype)
        if self.final_conv:
            self.conv_out = conv1d(self.d_model * 2 ** len(self.strides), 3, init_std=std, weight_norm=wn,
                                   dtype=self.dtype)
        self.last = nn.Dense(2 * self.latent_dim, kernel_init=kernel_init(std),
                             bias_init=posterior_bias_init(self.scale_bias_init), dtype=self.dtype,
                             param_dtype=jnp.float32)

    @property
    def hop(self) -> int:
        return math.prod(self.strides)

    def features(self, audio):
        if audio.ndim != 2:
            raise ValueError(f"encoder expects audio [B, N], got shape {audio.shape}")
        n = audio.shape[1]
        pad = -n % self.hop
        x = jnp.pad(audio.astype(self.dtype), ((0, 0), (0, pad)))[:, :, None]
        x = self.conv_in(x)
        for block in self.blocks:
            x = block(x)
        x = self.act_out(x)
        return self.conv_out(x) if self.final_conv else x

    def head(self, h):
        return self.last(h).astype(jnp.float32)
