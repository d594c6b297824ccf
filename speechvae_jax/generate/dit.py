"""The velocity network: a diffusion transformer (DiT) over latent frames, F5-TTS style.

Inputs per frame: the noisy latent x_t, the audio prompt `cond` (the known frames, zeros where the
model must generate) and a text embedding; they are concatenated, projected to the model width and
given convolutional positions. Each block is pre-norm self-attention (rotary positions) and an MLP,
both modulated by the flow time through adaptive layer norm (shift, scale and a gate, all zero at
initialisation, so every block starts as the identity). Shapes: B batch, T frames, L latent
channels, D width. Parameters are float32; `dtype` is the compute dtype (attention softmax, layer
norms and the output in float32).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from speechvae_jax.generate.text import FILLER

Dtype = Any


def sinusoidal(x: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Positions or times x [...] -> [..., dim] float32 (sines then cosines, geometric frequencies)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = x.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def rotary(x: jax.Array, base: float = 10000.0) -> jax.Array:
    """Rotary position embedding over axis 1 of x [B, T, H, Dh] (pairs (i, i + Dh/2)), in float32."""
    half = x.shape[-1] // 2
    freqs = base ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angles = jnp.arange(x.shape[1], dtype=jnp.float32)[:, None] * freqs  # [T, Dh/2]
    cos, sin = jnp.cos(angles)[None, :, None], jnp.sin(angles)[None, :, None]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x.dtype)


def _dense(features: int, dtype: Dtype, name: str | None = None, zero: bool = False) -> nn.Dense:
    init = nn.initializers.zeros if zero else nn.initializers.lecun_normal()
    return nn.Dense(features, kernel_init=init, dtype=dtype, param_dtype=jnp.float32, name=name)


def _norm(name: str | None = None, affine: bool = True) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-6, use_scale=affine, use_bias=affine, dtype=jnp.float32,
                        param_dtype=jnp.float32, name=name)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-V2 block: depthwise conv(7), LN, MLP with GELU and global response norm; residual.

    x [B, T, C], mask [B, T] bool (padded frames are zeroed and excluded from the response norm).
    """
    mult: int = 2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        c = x.shape[-1]
        m = mask[..., None].astype(x.dtype)
        y = nn.Conv(c, (7,), padding=[(3, 3)], feature_group_count=c, dtype=self.dtype,
                    param_dtype=jnp.float32)(x * m)
        y = _dense(c * self.mult, self.dtype)(_norm()(y).astype(self.dtype))
        y = nn.gelu(y).astype(jnp.float32) * m
        # [B, 1, C*mult]; the epsilon keeps the gradient finite for an all-zero channel (a row whose text
        # was dropped for guidance: d sqrt(s) / ds is infinite at s = 0)
        gx = jnp.sqrt(jnp.sum(y ** 2, axis=1, keepdims=True) + 1e-12)
        nx = gx / (jnp.mean(gx, axis=-1, keepdims=True) + 1e-6)
        gamma = self.param("grn_gamma", nn.initializers.zeros, (c * self.mult,), jnp.float32)
        beta = self.param("grn_beta", nn.initializers.zeros, (c * self.mult,), jnp.float32)
        y = gamma * (y * nx) + beta + y
        return x + _dense(c, self.dtype)(y.astype(self.dtype)) * m


class TextEmbedding(nn.Module):
    """tokens int [B, T] (one per frame) -> [B, T, width]: embedding + sinusoidal positions, ConvNeXt.

    FILLER frames (padding of the unit sequence, or every frame when text is dropped) stay zero.
    """
    num_tokens: int
    width: int
    layers: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, tokens, mask):
        keep = (mask & (tokens != FILLER))
        x = nn.Embed(self.num_tokens, self.width, dtype=self.dtype, param_dtype=jnp.float32)(tokens)
        x = x + sinusoidal(jnp.arange(tokens.shape[1]), self.width).astype(self.dtype)
        x = x * keep[..., None]
        for _ in range(self.layers):
            x = ConvNeXtBlock(dtype=self.dtype)(x, keep)
        return x


class ConvPositions(nn.Module):
    """Convolutional position embedding: two grouped convs with Mish. x [B, T, D] -> [B, T, D]."""
    kernel: int = 31
    groups: int = 16
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        m = mask[..., None].astype(x.dtype)
        pad = [(self.kernel // 2, self.kernel // 2)]
        for _ in range(2):
            x = nn.Conv(x.shape[-1], (self.kernel,), padding=pad, feature_group_count=self.groups,
                        dtype=self.dtype, param_dtype=jnp.float32)(x * m)
            x = x * jnp.tanh(nn.softplus(x))
        return x * m


class Attention(nn.Module):
    """Multi-head self-attention with rotary positions; keys outside `mask` [B, T] are ignored."""
    heads: int
    rotary_base: float = 10000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, mask):
        b, t, d = x.shape
        q, k, v = (_dense(d, self.dtype, name)(x).reshape(b, t, self.heads, d // self.heads)
                   for name in ("query", "key", "value"))
        q, k = rotary(q, self.rotary_base), rotary(k, self.rotary_base)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(d // self.heads)
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, d)
        return _dense(d, self.dtype, "out")(out)


class DiTBlock(nn.Module):
    """x + gate * Attn(modulated LN(x)), then x + gate * MLP(modulated LN(x)); time emb [B, D]."""
    heads: int
    ff_mult: int
    rotary_base: float = 10000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, temb, mask):
        d = x.shape[-1]
        mod = _dense(6 * d, jnp.float32, "modulation", zero=True)(nn.silu(temb))[:, None]
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = jnp.split(mod, 6, axis=-1)
        y = _norm(affine=False)(x) * (1 + scale_a) + shift_a
        x = x + gate_a * Attention(self.heads, self.rotary_base, self.dtype)(y.astype(self.dtype), mask)
        y = _norm(affine=False)(x) * (1 + scale_f) + shift_f
        y = nn.gelu(_dense(d * self.ff_mult, self.dtype)(y.astype(self.dtype)), approximate=True)
        return x + gate_f * _dense(d, self.dtype)(y)


class DiT(nn.Module):
    """Velocity v(x_t, t | prompt, text) for latent frames; `config` is the `model` config section.

    __call__(x [B,T,L], cond [B,T,L], tokens int [B,T], t [B], mask [B,T] bool, drop_audio [B] bool,
    drop_text [B] bool) -> v [B,T,L] float32. `drop_audio` zeroes the prompt, `drop_text` replaces
    the tokens by FILLER (the unconditional branches of classifier-free guidance).
    """
    latent_dim: int
    num_tokens: int
    width: int
    depth: int
    heads: int
    ff_mult: int = 2
    text_width: int = 512
    text_layers: int = 4
    conv_pos_kernel: int = 31
    conv_pos_groups: int = 16
    rotary_base: float = 10000.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, cond, tokens, t, mask, drop_audio, drop_text):
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"model.width {self.width} must split into {self.heads} heads of even size")
        mask = mask.astype(bool)
        cond = jnp.where(drop_audio[:, None, None], 0.0, cond)
        tokens = jnp.where(drop_text[:, None], FILLER, tokens)
        text = TextEmbedding(self.num_tokens, self.text_width, self.text_layers, self.dtype)(tokens, mask)
        h = jnp.concatenate([x.astype(self.dtype), cond.astype(self.dtype), text], axis=-1)
        h = _dense(self.width, self.dtype, "input")(h) * mask[..., None]
        h = h + ConvPositions(self.conv_pos_kernel, self.conv_pos_groups, self.dtype)(h, mask)
        temb = sinusoidal(t * 1000.0, 256)
        temb = _dense(self.width, jnp.float32)(nn.silu(_dense(self.width, jnp.float32)(temb)))
        for _ in range(self.depth):
            h = DiTBlock(self.heads, self.ff_mult, self.rotary_base, self.dtype)(h, temb, mask)
        shift, scale = jnp.split(_dense(2 * self.width, jnp.float32, "final_modulation", zero=True)(
            nn.silu(temb))[:, None], 2, axis=-1)
        h = _norm(affine=False)(h) * (1 + scale) + shift
        return _dense(self.latent_dim, jnp.float32, "output")(h).astype(jnp.float32)


def make_dit(model_cfg, num_tokens: int) -> DiT:
    """The DiT a `model` config section describes, for a vocabulary of `num_tokens` ids."""
    return DiT(latent_dim=model_cfg.latent_dim, num_tokens=num_tokens, width=model_cfg.width,
               depth=model_cfg.depth, heads=model_cfg.heads, ff_mult=model_cfg.ff_mult,
               text_width=model_cfg.text_width, text_layers=model_cfg.text_layers,
               conv_pos_kernel=model_cfg.conv_pos_kernel, conv_pos_groups=model_cfg.conv_pos_groups,
               rotary_base=model_cfg.rotary_base, dtype=jnp.dtype(model_cfg.dtype))
