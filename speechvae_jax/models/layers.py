"""Shared waveform layers: Snake / SnakeBeta activations, 1-D convolutions, learned upsampling.

Layout is channels-last throughout: x [B, T, C]. Parameters are float32; `dtype` is the compute dtype.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any


class Snake(nn.Module):
    """x + 1/alpha * sin^2(alpha * x), one alpha per channel (initialised to 1). x [B, T, C]."""
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        alpha = self.param("alpha", nn.initializers.ones, (x.shape[-1],), jnp.float32).astype(self.dtype)
        return x + jnp.reciprocal(alpha + 1e-9) * jnp.sin(alpha * x) ** 2


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha * x) with alpha = exp(log_alpha), beta = exp(log_beta) per channel.

    Log-scale parameters initialised to 0 (alpha = beta = 1). x [B, T, C].
    """
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        alpha = jnp.exp(self.param("log_alpha", nn.initializers.zeros, (c,), jnp.float32)).astype(self.dtype)
        beta = jnp.exp(self.param("log_beta", nn.initializers.zeros, (c,), jnp.float32)).astype(self.dtype)
        return x + jnp.reciprocal(beta + 1e-9) * jnp.sin(alpha * x) ** 2


def kernel_init(init_std: float | None):
    """N(0, init_std^2), or LeCun normal (variance-preserving over the fan-in) when init_std is None."""
    return nn.initializers.lecun_normal() if init_std is None else nn.initializers.normal(init_std)


def conv1d(features: int, kernel: int, *, stride: int = 1, dilation: int = 1, padding=None,
           init_std: float | None = None, dtype: Dtype = jnp.float32, name: str | None = None) -> nn.Conv:
    """A 1-D nn.Conv; default padding keeps the length ("same" for odd kernels, any dilation).

    Kernel init N(0, init_std^2) when given (DAC uses 0.02, BigVGAN 0.01), else LeCun normal.
    """
    if padding is None:
        total = (kernel - 1) * dilation
        padding = [(total // 2, total - total // 2)]
    return nn.Conv(features, (kernel,), strides=(stride,), kernel_dilation=(dilation,), padding=padding,
                   kernel_init=kernel_init(init_std), dtype=dtype, param_dtype=jnp.float32, name=name)


class _Upsample(nn.Module):
    """Fields shared by the learned upsamplers.

    Kernel init N(0, init_std^2) as BigVGAN, or with init_std None variance-preserving: each output
    sample sums K / stride taps over C_in channels, so std = sqrt(stride / (K * C_in)).
    """
    features: int
    stride: int
    kernel_size: int
    dtype: Dtype = jnp.float32
    init_std: float | None = 0.01

    def init_for(self, c_in: int):
        std = self.init_std if self.init_std is not None else (self.stride / (self.kernel_size * c_in)) ** 0.5
        return nn.initializers.normal(std)


class SubPixelUpsample(_Upsample):
    """Transposed 1-D convolution (kernel K = 2 * stride, padding stride // 2) as two sub-pixel convs.

    x [B, T, C_in] -> [B, T * stride, features]. Output n = t * stride + r equals PyTorch's
    `ConvTranspose1d(C_in, features, K, stride, padding=(K - stride) // 2)` at n (the first T * stride
    samples). Parameters `kernel` [K, C_in, features] and `bias` [features] have the transposed
    convolution's shapes and meaning; the polyphase split only regroups the taps: phases
    r < stride - p read inputs (t - 1, t), the others read (t, t + 1), so no multiply is wasted.
    """

    @nn.compact
    def __call__(self, x):
        s, k = self.stride, self.kernel_size
        if k != 2 * s:
            raise ValueError(f"SubPixelUpsample needs kernel_size == 2 * stride, got {k} and {s}")
        p = (k - s) // 2
        c_in = x.shape[-1]
        w = self.param("kernel", self.init_for(c_in), (k, c_in, self.features), jnp.float32).astype(self.dtype)
        b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        early = np.arange(0, s - p)
        late = np.arange(s - p, s)
        # Taps [2, C_in, phases, C_out] for the input pairs each phase group reads.
        w_early = jnp.stack([w[s + early + p], w[early + p]]).transpose(0, 2, 1, 3)
        w_late = jnp.stack([w[late + p], w[late + p - s]]).transpose(0, 2, 1, 3)
        x = x.astype(self.dtype)
        bsz, t = x.shape[:2]
        outs = []
        for taps, pad in ((w_early, (1, 0)), (w_late, (0, 1))):
            n_ph = taps.shape[2]
            y = jax.lax.conv_general_dilated(x, taps.reshape(2, c_in, n_ph * self.features), (1,), [pad],
                                             dimension_numbers=("NWC", "WIO", "NWC"))
            outs.append(y.reshape(bsz, t, n_ph, self.features))
        return jnp.concatenate(outs, axis=2).reshape(bsz, t * s, self.features) + b


class TransposedUpsample(_Upsample):
    """Flax nn.ConvTranspose (kernel K, stride s, "SAME"): x [B, T, C_in] -> [B, T * s, features].

    Same parameter shapes as SubPixelUpsample; kept as the config alternative the benchmark times.
    """

    @nn.compact
    def __call__(self, x):
        return nn.ConvTranspose(self.features, (self.kernel_size,), strides=(self.stride,), padding="SAME",
                                kernel_init=self.init_for(x.shape[-1]), dtype=self.dtype,
                                param_dtype=jnp.float32, name="conv")(x)


UPSAMPLERS = {"subpixel": SubPixelUpsample, "transpose": TransposedUpsample}

TRUNK_INITS = ("release", "fan_in")
"""`model.trunk_init`: how the non-residual ("trunk") layers are initialised.

"release": as DAC / BigVGAN, N(0, 0.02^2) in the encoder and N(0, 0.01^2) in the decoder. Their
weight-normalised convolutions recover the scale while training; at the tiny widths the plain
convolutions here shrink the signal by ~1e-5 through the encoder and ~1e-6 through the decoder.
"fan_in": variance-preserving (LeCun) for the trunk (input, strided, upsampling, output and last
layers); the residual branches keep the release's small init, so each block starts near identity.
"""


def trunk_std(trunk_init: str, release_std: float) -> float | None:
    """The init_std a trunk layer gets: release_std, or None (variance-preserving) for "fan_in"."""
    if trunk_init not in TRUNK_INITS:
        raise ValueError(f"model.trunk_init must be one of {TRUNK_INITS}, got {trunk_init!r}")
    return release_std if trunk_init == "release" else None
