"""Shared waveform layers: Snake / SnakeBeta activations, convolutions with optional weight
normalisation, learned upsampling.

Layout is channels-last throughout: x [B, T, C] (2-D: [B, H, W, C]). Parameters are float32; `dtype`
is the compute dtype.
"""
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.filters import alias_free_downsample2, alias_free_upsample2
from speechvae_jax.dsp.trig import sincos

Dtype = Any


@jax.custom_vjp
def snake(x, alpha, inv_beta):
    """x + inv_beta * sin^2(alpha * x), per-channel alpha and inv_beta [C] over x [..., C].

    sin and cos come from `dsp.trig.sincos` (polynomials; XLA:CPU's own sin was most of a Snake's
    time) and the VJP is written out: one sincos of 2 alpha x per element, the parameter gradients
    summed in float32 (XLA:CPU ran the autodiff backward of the paper encoder's Snakes about 12 times
    slower than their forward, docs/performance.md). Numerics are float32 whatever x's dtype.
    """
    return _snake_fwd(x, alpha, inv_beta)[0]


def _snake_fwd(x, alpha, inv_beta):
    sin, _ = sincos(alpha * x)
    y = x.astype(jnp.float32) + inv_beta.astype(jnp.float32) * sin * sin
    return y.astype(jnp.result_type(x, alpha, inv_beta)), (x, alpha, inv_beta)


def _snake_bwd(residuals, g):
    x, alpha, inv_beta = residuals
    g = g.astype(jnp.float32)
    a, b, xf = alpha.astype(jnp.float32), inv_beta.astype(jnp.float32), x.astype(jnp.float32)
    sin_twice, cos_twice = sincos(2.0 * a * xf)   # d sin^2(a x) / d(a x) = sin 2ax; sin^2 ax = (1 - cos 2ax) / 2
    g_x = g * (1.0 + (b * a) * sin_twice)
    # both parameter sums as one reduction, so XLA evaluates the polynomial once for them rather than
    # once per sum (the paper encoder's forward + backward 6 % faster, the decoder's 17 %)
    sums = jnp.sum(jnp.stack([g * xf * sin_twice, g * (0.5 - 0.5 * cos_twice)]), axis=tuple(range(1, x.ndim)))
    return g_x.astype(x.dtype), (b * sums[0]).astype(alpha.dtype), sums[1].astype(inv_beta.dtype)


snake.defvjp(_snake_fwd, _snake_bwd)


class Snake(nn.Module):
    """x + 1/alpha * sin^2(alpha * x), one alpha per channel (initialised to 1). x [B, T, C]."""
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        alpha = self.param("alpha", nn.initializers.ones, (x.shape[-1],), jnp.float32).astype(self.dtype)
        return snake(x, alpha, jnp.reciprocal(alpha + 1e-9))


class SnakeBeta(nn.Module):
    """x + 1/beta * sin^2(alpha * x) with alpha = exp(log_alpha), beta = exp(log_beta) per channel.

    Log-scale parameters initialised to 0 (alpha = beta = 1). x [B, T, C]. With `anti_alias` the
    activation runs at twice the rate between BigVGAN's Kaiser-sinc 2x upsampling and 2x
    downsampling (`Activation1d`); the parameters are the same.
    """
    dtype: Dtype = jnp.float32
    anti_alias: bool = False

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        alpha = jnp.exp(self.param("log_alpha", nn.initializers.zeros, (c,), jnp.float32)).astype(self.dtype)
        beta = jnp.exp(self.param("log_beta", nn.initializers.zeros, (c,), jnp.float32)).astype(self.dtype)
        if self.anti_alias:
            x = alias_free_upsample2(x.astype(self.dtype))
        y = snake(x, alpha, jnp.reciprocal(beta + 1e-9))
        return alias_free_downsample2(y) if self.anti_alias else y


def kernel_init(init_std: float | None):
    """N(0, init_std^2), or LeCun normal (variance-preserving over the fan-in) when init_std is None."""
    return nn.initializers.lecun_normal() if init_std is None else nn.initializers.normal(init_std)


def weight_norm(v, g, axis: int):
    """PyTorch `weight_norm`: w = g * v / ||v||, the norm over every axis of v but `axis`; g [v.shape[axis]]."""
    axis = axis % v.ndim
    others = tuple(i for i in range(v.ndim) if i != axis)
    shape = [1] * v.ndim
    shape[axis] = v.shape[axis]
    return v * (g / jnp.sqrt(jnp.sum(v * v, axis=others))).reshape(shape)


def weight_norm_gain(v, axis: int):
    """Initial gain ||v|| per index of `axis` (so the normalised weight starts equal to v), float32."""
    axis = axis % v.ndim
    return jnp.sqrt(jnp.sum(v * v, axis=tuple(i for i in range(v.ndim) if i != axis)))


def normed_kernel(module: nn.Module, init: Callable, shape: Sequence[int], weight_norm_on: bool, axis: int = -1):
    """The `kernel` param of `module`; with weight normalisation it is the direction v and a trainable
    `gain` g (initialised to ||v||, one per index of `axis`) gives w = g v / ||v||. float32."""
    v = module.param("kernel", init, tuple(shape), jnp.float32)
    if not weight_norm_on:
        return v
    g = module.param("gain", lambda _rng: weight_norm_gain(v, axis))
    return weight_norm(v, g, axis)


IM2COL_ROWS = 512    # at most this many output frames (batch x time) for an unstrided im2col conv
IM2COL_TAPS = 4096   # and at least this many taps (kernel x input channels) per output


def prefer_im2col(out_rows: int, c_in: int, kernel: int, stride: int) -> bool:
    """Whether a 1-D convolution runs as `conv1d_im2col` rather than XLA's convolution: on the CPU
    backend only, for strided convolutions and for wide ones over few frames. XLA:CPU's weight and
    input gradients of those ran 1.1-2.8x slower than the matmul form at the paper shapes
    (docs/performance.md); accelerators keep their native convolutions."""
    if jax.default_backend() != "cpu" or kernel == 1:
        return False
    return stride > 1 or (out_rows <= IM2COL_ROWS and kernel * c_in >= IM2COL_TAPS)


def conv1d_im2col(x, w, stride: int, dilation: int, padding: tuple[int, int]):
    """The 1-D convolution of x [B, T, C] with w [K, C, F] as one matmul over the gathered taps
    [B, T', K*C] -> [B, T', F]; equal to `lax.conv_general_dilated` up to summation order."""
    k, c, f = w.shape
    x = jnp.pad(x, ((0, 0), tuple(padding), (0, 0)))
    t_out = (x.shape[1] - (k - 1) * dilation - 1) // stride + 1
    taps = [jax.lax.slice_in_dim(x, i * dilation, i * dilation + (t_out - 1) * stride + 1, stride, axis=1)
            for i in range(k)]
    return jnp.concatenate(taps, axis=-1) @ w.reshape(k * c, f)


def _conv1d(x, w, stride: int, dilation: int, padding: tuple[int, int]):
    """x [B, T, C] * w [K, C, F] -> [B, T', F], the faster form for the backend and shape."""
    t_out = (x.shape[1] + sum(padding) - (w.shape[0] - 1) * dilation - 1) // stride + 1
    if prefer_im2col(x.shape[0] * t_out, w.shape[1], w.shape[0], stride):
        return conv1d_im2col(x, w, stride, dilation, padding)
    return jax.lax.conv_general_dilated(x, w, (stride,), [tuple(padding)], rhs_dilation=(dilation,),
                                        dimension_numbers=("NWC", "WIO", "NWC"))


class Conv(nn.Module):
    """N-d convolution over channels-last x [B, *spatial, C_in] -> [B, *spatial', features].

    Without weight normalisation it is `nn.Conv` (params `kernel` [*kernel_size, C_in, features] and
    `bias`); with `weight_norm` the kernel is the direction v and `gain` [features] the per-output-channel
    norm, as PyTorch `weight_norm(conv, dim=0)`. `padding` is explicit: one (low, high) per spatial axis.
    1-D convolutions (and (k, 1) kernels, folded to 1-D) pick their form with `prefer_im2col`.
    """
    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    kernel_dilation: Sequence[int] | None = None
    padding: Sequence[tuple[int, int]] | None = None
    weight_norm: bool = False
    kernel_init: Callable = nn.initializers.lecun_normal()
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        nd = len(self.kernel_size)
        w = normed_kernel(self, self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), self.weight_norm)
        b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        strides = tuple(self.strides or (1,) * nd)
        padding = [tuple(p) for p in (self.padding or [(0, 0)] * nd)]
        dilation = tuple(self.kernel_dilation or (1,) * nd)
        x, w = x.astype(self.dtype), w.astype(self.dtype)
        if nd == 1:
            y = _conv1d(x, w, strides[0], dilation[0], padding[0])
        elif nd == 2 and self.kernel_size[1] == 1 and strides[1] == 1 and padding[1] == (0, 0):
            # a (k, 1) kernel (the period discriminators') never mixes the second axis: fold it into the
            # batch and run the 1-D convolution (XLA:CPU ran the 2-D form's backward 1.8x slower)
            bsz, _, width, _ = x.shape
            folded = x.transpose(0, 2, 1, 3).reshape(bsz * width, x.shape[1], x.shape[3])
            y = _conv1d(folded, w[:, 0], strides[0], dilation[0], padding[0])
            y = y.reshape(bsz, width, y.shape[1], self.features).transpose(0, 2, 1, 3)
        else:
            spatial = "HWD"[:nd]
            y = jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                             dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"))
        return y + b.astype(self.dtype)


def conv1d(features: int, kernel: int, *, stride: int = 1, dilation: int = 1, padding=None,
           init_std: float | None = None, weight_norm: bool = False, dtype: Dtype = jnp.float32,
           name: str | None = None) -> Conv:
    """A 1-D `Conv`; default padding keeps the length ("same" for odd kernels, any dilation).

    Kernel init N(0, init_std^2) when given (DAC uses 0.02, BigVGAN 0.01), else LeCun normal.
    """
    if padding is None:
        total = (kernel - 1) * dilation
        padding = [(total // 2, total - total // 2)]
    return Conv(features, (kernel,), (stride,), (dilation,), padding, weight_norm, kernel_init(init_std), dtype,
                name=name)


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
    weight_norm: bool = False  # as PyTorch weight_norm(ConvTranspose1d, dim=0): one gain per input channel
    full_length: bool = False  # keep the transposed convolution's T * stride + stride % 2 outputs

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
    With `full_length` the output keeps the transposed convolution's whole length, T * stride +
    stride % 2 (BigVGAN's upsamplers give one sample more for odd strides).
    """

    @nn.compact
    def __call__(self, x):
        s, k = self.stride, self.kernel_size
        if k != 2 * s:
            raise ValueError(f"SubPixelUpsample needs kernel_size == 2 * stride, got {k} and {s}")
        p = (k - s) // 2
        c_in = x.shape[-1]
        w = normed_kernel(self, self.init_for(c_in), (k, c_in, self.features), self.weight_norm, axis=1)
        w = w.astype(self.dtype)
        b = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
        early = np.arange(0, s - p)
        late = np.arange(s - p, s)
        # Taps [2, C_in, phases, C_out] for the input pairs each phase group reads.
        w_early = jnp.stack([w[s + early + p], w[early + p]]).transpose(0, 2, 1, 3)
        w_late = jnp.stack([w[late + p], w[late + p - s]]).transpose(0, 2, 1, 3)
        x = x.astype(self.dtype)
        bsz, t = x.shape[:2]
        extra = s % 2 if self.full_length else 0
        outs = []
        for taps, pad in ((w_early, (1, extra)), (w_late, (0, 1))):
            n_ph = taps.shape[2]
            y = jax.lax.conv_general_dilated(x, taps.reshape(2, c_in, n_ph * self.features), (1,), [pad],
                                             dimension_numbers=("NWC", "WIO", "NWC"))
            outs.append(y.reshape(bsz, -1, n_ph, self.features))
        y = jnp.concatenate([outs[0][:, :t], outs[1]], axis=2).reshape(bsz, t * s, self.features)
        if extra:  # phase 0 of input position t: the transposed convolution's last output
            y = jnp.concatenate([y, outs[0][:, t:, 0]], axis=1)
        return y + b


class TransposedUpsample(_Upsample):
    """Flax nn.ConvTranspose (kernel K, stride s, "SAME"): x [B, T, C_in] -> [B, T * s, features].

    Same parameter shapes as SubPixelUpsample; kept as the config alternative the benchmark times.
    """

    @nn.compact
    def __call__(self, x):
        if self.weight_norm or self.full_length:
            raise ValueError("model.decoder.upsample='transpose' has no weight norm / full lengths; use 'subpixel'")
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
