"""Flax Linen ports of the WavLM / HuBERT / wav2vec2 encoders (inference numerics of Hugging Face).

`SSLEncoder(cfg)(audio [B,N], frame_mask [B,T] | None, mask_time [B,T] | None)` returns the list of
`cfg.num_hidden_layers + 1` hidden states [B,T,D], indexed like Hugging Face `output_hidden_states`
(transformers 5): index 0 is the input of the first transformer layer (feature projection + positional
conv, plus the encoder layer norm in the post-norm layout), index k the output of layer k.
Everything computes in float32.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.teachers.config import EncoderConfig

_NEG = float(np.finfo(np.float32).min)


def activation(name: str, x: jax.Array) -> jax.Array:
    if name == "gelu":
        return jax.nn.gelu(x, approximate=False)
    if name == "gelu_new":
        return jax.nn.gelu(x, approximate=True)
    return jax.nn.relu(x)


def normalize_audio(audio: jax.Array, sample_mask: jax.Array | None) -> jax.Array:
    """Zero-mean unit-variance per utterance over its valid samples; padding set to 0. [B,N]."""
    x = audio.astype(jnp.float32)
    m = jnp.ones_like(x) if sample_mask is None else sample_mask.astype(jnp.float32)
    count = jnp.maximum(m.sum(-1, keepdims=True), 1.0)
    mean = (x * m).sum(-1, keepdims=True) / count
    var = (jnp.square(x - mean) * m).sum(-1, keepdims=True) / count
    return (x - mean) / jnp.sqrt(var + 1e-7) * m


def relative_position_buckets(length: int, num_buckets: int, max_distance: int) -> np.ndarray:
    """WavLM's bidirectional log-bucketed relative positions [T,T] (int), computed on the host."""
    rel = np.arange(length)[None, :] - np.arange(length)[:, None]
    half = num_buckets // 2
    buckets = (rel > 0).astype(np.int64) * half
    rel = np.abs(rel)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        large = np.log(rel.astype(np.float32) / np.float32(max_exact))
    large = large / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact)
    large = np.minimum((np.float32(max_exact) + np.nan_to_num(large, neginf=0.0)).astype(np.int64),
                       half - 1)
    return buckets + np.where(rel < max_exact, rel, large)


class LayerNorm(nn.Module):
    """Layer norm over the last axis, two-pass variance as PyTorch, float32."""
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        d = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (d,))
        bias = self.param("bias", nn.initializers.zeros, (d,))
        x = x.astype(jnp.float32)
        mean = x.mean(-1, keepdims=True)
        var = jnp.square(x - mean).mean(-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * scale + bias


class ConvLayer(nn.Module):
    """One conv of the feature extractor on [B,N,C]: conv -> (group|layer|no norm) -> activation."""
    features: int
    kernel: int
    stride: int
    use_bias: bool
    norm: str  # "group", "layer" or "none"
    act: str

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, (self.kernel,), (self.stride,), padding="VALID",
                    use_bias=self.use_bias, name="conv")(x)
        if self.norm == "layer":
            x = LayerNorm(1e-5, name="norm")(x)
        elif self.norm == "group":  # one group per channel: normalise each channel over time
            scale = self.param("norm_scale", nn.initializers.ones, (self.features,))
            bias = self.param("norm_bias", nn.initializers.zeros, (self.features,))
            mean = x.mean(1, keepdims=True)
            var = jnp.square(x - mean).mean(1, keepdims=True)
            x = (x - mean) * jax.lax.rsqrt(var + 1e-5) * scale + bias
        return activation(self.act, x)


class PositionalConv(nn.Module):
    """Grouped conv with weight norm over the kernel axis (PyTorch `weight_norm(dim=2)`), same padding."""
    cfg: EncoderConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.cfg
        k, g, d = cfg.num_conv_pos_embeddings, cfg.num_conv_pos_embedding_groups, cfg.hidden_size
        v = self.param("weight_v", nn.initializers.normal(2 * math.sqrt(1 / (k * d))), (k, d // g, d))
        w_g = self.param("weight_g", lambda _, shape: jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))), (k,))
        b = self.param("bias", nn.initializers.zeros, (d,))
        w = v * (w_g / jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))))[:, None, None]
        y = jax.lax.conv_general_dilated(x, w, (1,), [(k // 2, k // 2)],
                                         dimension_numbers=("NWC", "WIO", "NWC"),
                                         feature_group_count=g) + b
        if k % 2 == 0:
            y = y[:, :-1]
        return activation(cfg.feat_extract_activation, y)


class Attention(nn.Module):
    """Multi-head self-attention; for WavLM with the gated relative position bias.

    Returns (output [B,T,D], position_bias [H,T,T] or None). Layer 0 of WavLM owns the bucket
    embedding and computes the bias; later layers receive it and apply their own gate.
    """
    cfg: EncoderConfig
    has_rel_bias: bool

    @nn.compact
    def __call__(self, x, key_mask, position_bias):
        cfg = self.cfg
        b, t, d = x.shape
        h = cfg.num_attention_heads
        hd = d // h

        def heads(y):
            return y.reshape(b, t, h, hd).transpose(0, 2, 1, 3)

        q = heads(nn.Dense(d, name="q_proj")(x)) * (hd ** -0.5)
        k = heads(nn.Dense(d, name="k_proj")(x))
        v = heads(nn.Dense(d, name="v_proj")(x))
        scores = jnp.einsum("bhqc,bhkc->bhqk", q, k)
        if cfg.kind == "wavlm":
            if self.has_rel_bias:
                table = self.param("rel_attn_embed", nn.initializers.normal(1.0), (cfg.num_buckets, h))
                buckets = relative_position_buckets(t, cfg.num_buckets, cfg.max_bucket_distance)
                position_bias = jnp.transpose(table[buckets], (2, 0, 1))
            const = self.param("gru_rel_pos_const", nn.initializers.ones, (h,))
            proj = nn.Dense(8, name="gru_rel_pos_linear")(heads(x))
            gates = jax.nn.sigmoid(proj.reshape(b, h, t, 2, 4).sum(-1))
            gate = gates[..., 0:1] * (gates[..., 1:2] * const[None, :, None, None] - 1.0) + 2.0
            scores = scores + gate * position_bias[None]
        if key_mask is not None:
            scores = jnp.where(key_mask[:, None, None, :], scores, _NEG)
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1)
        out = jnp.einsum("bhqk,bhkc->bhqc", probs, v).transpose(0, 2, 1, 3).reshape(b, t, d)
        return nn.Dense(d, name="out_proj")(out), position_bias


class EncoderLayer(nn.Module):
    """Transformer block, post-norm (Base) or pre-norm ("stable layer norm", Large)."""
    cfg: EncoderConfig
    has_rel_bias: bool

    @nn.compact
    def __call__(self, x, key_mask, position_bias):
        cfg = self.cfg
        attention = Attention(cfg, self.has_rel_bias, name="attention")
        ln = LayerNorm(cfg.layer_norm_eps, name="layer_norm")
        final_ln = LayerNorm(cfg.layer_norm_eps, name="final_layer_norm")

        def feed_forward(y):
            y = nn.Dense(cfg.intermediate_size, name="intermediate_dense")(y)
            return nn.Dense(cfg.hidden_size, name="output_dense")(activation(cfg.hidden_act, y))

        if cfg.do_stable_layer_norm:
            a, position_bias = attention(ln(x), key_mask, position_bias)
            x = x + a
            return x + feed_forward(final_ln(x)), position_bias
        a, position_bias = attention(x, key_mask, position_bias)
        x = ln(x + a)
        return final_ln(x + feed_forward(x)), position_bias


class SSLEncoder(nn.Module):
    """Conv feature extractor + feature projection + positional conv + transformer layers.

    feature_grad_mult scales the gradient reaching the conv feature extractor (0.1 in HuBERT /
    wav2vec2 pre-training, for stability); the forward pass does not depend on it."""
    cfg: EncoderConfig
    feature_grad_mult: float = 1.0

    @nn.compact
    def __call__(self, audio, frame_mask=None, mask_time=None):
        """audio [B,N] (already normalised if the checkpoint wants it), frame_mask [B,T] bool
        (valid frames, None = all), mask_time [B,T] bool (frames replaced by the learned mask
        embedding, for masked-prediction pre-training) -> list of L+1 hidden states [B,T,D]."""
        cfg = self.cfg
        x = audio.astype(jnp.float32)[..., None]
        for i, (c, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride)):
            norm = cfg.feat_extract_norm if (cfg.feat_extract_norm == "layer" or i == 0) else "none"
            x = ConvLayer(c, k, s, cfg.conv_bias, norm, cfg.feat_extract_activation,
                          name=f"conv_layers_{i}")(x)
        if self.feature_grad_mult != 1.0:
            x = x * self.feature_grad_mult + jax.lax.stop_gradient(x) * (1.0 - self.feature_grad_mult)
        if cfg.feat_proj_layer_norm:
            x = LayerNorm(cfg.layer_norm_eps, name="feature_layer_norm")(x)
        x = nn.Dense(cfg.hidden_size, name="feature_projection")(x)
        if mask_time is not None:
            emb = self.param("masked_spec_embed", nn.initializers.uniform(1.0), (cfg.hidden_size,))
            x = jnp.where(mask_time[..., None], emb, x)
        if frame_mask is not None:
            x = jnp.where(frame_mask[..., None], x, 0.0)
        x = x + PositionalConv(cfg, name="pos_conv")(x)
        if not cfg.do_stable_layer_norm:
            x = LayerNorm(cfg.layer_norm_eps, name="encoder_layer_norm")(x)
        hidden = [x]
        position_bias = None
        for i in range(cfg.num_hidden_layers):
            x, position_bias = EncoderLayer(cfg, has_rel_bias=(i == 0), name=f"layers_{i}")(
                x, frame_mask, position_bias)
            hidden.append(x)
        return hidden
