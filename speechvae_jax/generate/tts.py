"""The TTS objective (speech infilling by flow matching) and its guided sampler, over a DiT.

Batches hold normalised latents (export manifest's `latent_mean` / `latent_std`) with one text
token per frame: {"latent" float32 [B,T,L], "mask" bool [B,T] (real frames, a prefix of each row),
"tokens" int32 [B,T]}. Training masks a random span of 70-100 % of each utterance's frames; the
rest is given to the model as the audio prompt and the loss counts the span only. Guidance drops the
prompt (p `drop_audio`) or the prompt and the text together (p `drop_all`), per utterance.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.generate import flow
from speechvae_jax.generate.dit import DiT


def span_mask(rng: jax.Array, lengths: jax.Array, num_frames: int,
              frac_range: tuple[float, float] = (0.7, 1.0)) -> jax.Array:
    """One contiguous span per row, of floor(frac * length) >= 1 frames with frac ~ U(frac_range),
    placed uniformly inside [0, length). lengths int [B] -> bool [B, num_frames]."""
    k_frac, k_start = jax.random.split(rng)
    lengths = lengths.astype(jnp.int32)
    frac = jax.random.uniform(k_frac, lengths.shape, minval=frac_range[0], maxval=frac_range[1])
    span = jnp.clip(jnp.floor(frac * lengths).astype(jnp.int32), 1, jnp.maximum(lengths, 1))
    start = jnp.floor(jax.random.uniform(k_start, lengths.shape) * (lengths - span + 1)).astype(jnp.int32)
    frames = jnp.arange(num_frames)[None, :]
    return (frames >= start[:, None]) & (frames < (start + span)[:, None])


def drop_flags(rng: jax.Array, batch: int, drop_audio: float, drop_all: float) -> tuple[jax.Array, jax.Array]:
    """Per-utterance guidance dropout -> (drop_audio [B] bool, drop_text [B] bool); text is only ever
    dropped together with the audio prompt."""
    k_all, k_audio = jax.random.split(rng)
    text = jax.random.uniform(k_all, (batch,)) < drop_all
    audio = text | (jax.random.uniform(k_audio, (batch,)) < drop_audio)
    return audio, text


def loss_fn(model: DiT, params, batch: dict, rng: jax.Array, flow_cfg: ConfigDict):
    """Flow-matching loss on the masked span -> (loss scalar, {"span_frac": mean masked share})."""
    x1 = batch["latent"].astype(jnp.float32)
    mask = batch["mask"].astype(bool)
    b, t_frames = mask.shape
    k_noise, k_time, k_span, k_drop = jax.random.split(rng, 4)
    x0 = jax.random.normal(k_noise, x1.shape, jnp.float32)
    t = jax.random.uniform(k_time, (b,))
    x_t, target = flow.linear_path(x0, x1, t)
    span = span_mask(k_span, mask.sum(-1), t_frames, tuple(flow_cfg.mask_frac)) & mask
    cond = jnp.where((span | ~mask)[..., None], 0.0, x1)
    drop_audio, drop_text = drop_flags(k_drop, b, flow_cfg.drop_audio, flow_cfg.drop_all)
    pred = model.apply({"params": params}, x_t, cond, batch["tokens"], t, mask, drop_audio, drop_text)
    loss = flow.masked_mse(pred, target, span)
    return loss, {"span_frac": jnp.sum(span) / jnp.maximum(jnp.sum(mask), 1)}


def guided_velocity(model: DiT, params, cond: jax.Array, tokens: jax.Array, mask: jax.Array,
                    cfg_scale: float | jax.Array) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """v(x [B,T,L], t scalar) guided by `cfg_scale` against the prediction with prompt and text both
    dropped; the conditional and unconditional halves run as one batch of 2B."""
    b = mask.shape[0]
    both = lambda a: jnp.concatenate([a, a], axis=0)
    dropped = jnp.concatenate([jnp.zeros(b, bool), jnp.ones(b, bool)])

    def velocity(x, t):
        v = model.apply({"params": params}, both(x), both(cond), both(tokens), jnp.full((2 * b,), t),
                        both(mask), dropped, dropped)
        return flow.guided(v[:b], v[b:], cfg_scale)
    return velocity


def sample(model: DiT, params, rng: jax.Array, cond: jax.Array, prompt_mask: jax.Array, tokens: jax.Array,
           mask: jax.Array, *, nfe: int, method: str = "euler", cfg_scale: float | jax.Array = 3.0,
           sway: float | None = -1.0) -> jax.Array:
    """Generate the frames of `mask` outside `prompt_mask`; the prompt frames are returned as given.

    cond [B,T,L] (normalised prompt latents; other frames are ignored), prompt_mask / mask [B,T] bool,
    tokens int [B,T] -> latents [B,T,L] float32 (zero on padded frames).
    """
    prompt_mask, mask = prompt_mask.astype(bool) & mask.astype(bool), mask.astype(bool)
    cond = jnp.where(prompt_mask[..., None], cond, 0.0).astype(jnp.float32)
    velocity = guided_velocity(model, params, cond, tokens, mask, cfg_scale)
    x0 = jax.random.normal(rng, cond.shape, jnp.float32)
    x = flow.integrate(velocity, x0, flow.sway_times(nfe, sway), method)
    return jnp.where(prompt_mask[..., None], cond, x) * mask[..., None]


def make_sampler(model: DiT, sample_cfg: ConfigDict) -> Callable:
    """jit(sample) with the `sample` config section's nfe, method and sway fixed:
    fn(params, rng, cond, prompt_mask, tokens, mask, cfg_scale) -> latents [B,T,L]."""
    def fn(params, rng, cond, prompt_mask, tokens, mask, cfg_scale):
        return sample(model, params, rng, cond, prompt_mask, tokens, mask, nfe=sample_cfg.nfe,
                      method=sample_cfg.method, cfg_scale=cfg_scale, sway=sample_cfg.sway)
    return jax.jit(fn)
