"""The generator's loss branches, declared once as a table (`generator_branches`).

A branch is a group of losses computed together from one input and differentiated together:

  reads "audio":   fn(y, ctx) -> {name: loss}, y = decoded audio [B, N] (masked), ctx["target"] [B, N]
  reads "stats":   fn(stats, ctx) -> {name: loss}, stats [B, T, 2L] = the encoder head's output
  reads "aligned": fn(stats, proj_params, ctx) -> {name: loss}, through the sampled latent and the
                   projection head, against the teacher frames in ctx
  reads "pitch":   fn(log_f0, ctx) -> {name: loss}, log_f0 [B, F] = the harmonic decoder's f0 head,
                   computed in the same decoder pass as y

Each loss enters the total as `weight * w * loss` where w = 1, or, for an `adaptive` branch, the
adaptive weight ||dL_ref / dtheta|| / (||dL / dtheta|| + eps) at the encoder's last layer (theta), with
L_ref the `reference` branch's loss (MR-STFT). An adaptive branch holds exactly one loss, so that its
gradient can be measured on its own. Adding a loss term is one entry in `generator_branches`; the
step (`train.steps.generator_loss_and_grads`) assembles gradients, weights and logs for any table.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.dsp.pitch import yin
from speechvae_jax.losses import adversarial, alignment, kl, spectral, weighting
from speechvae_jax.models import bottleneck
from speechvae_jax.models.projection import align_subspace
from speechvae_jax.models.vae import decoder_kind

READS = ("audio", "stats", "aligned", "pitch")
# Branches that read a decoder output (the key of `SpeechVAE.decode_outputs`): their cotangents are
# summed and pulled back through the decoder together (train.steps).
DECODED = {"audio": "audio", "pitch": "log_f0"}


@dataclasses.dataclass(frozen=True)
class Branch:
    """One row of the table: what it reads, its losses' fixed weights, how to compute them."""
    reads: str
    weights: dict[str, float]
    fn: Callable[..., dict[str, jax.Array]]
    adaptive: bool = False
    reference: bool = False
    log_prefix: str = "loss"

    def __post_init__(self):
        if self.reads not in READS:
            raise ValueError(f"branch reads {self.reads!r}, expected one of {READS}")
        if (self.adaptive or self.reference) and len(self.weights) != 1:
            raise ValueError(f"an adaptive or reference branch holds one loss, got {sorted(self.weights)}")


def stft_loss(lcfg: ConfigDict, estimate: jax.Array, reference: jax.Array) -> jax.Array:
    """The configured multi-resolution STFT loss (the reconstruction loss and adaptive reference)."""
    return spectral.multi_resolution_stft_loss(
        estimate, reference, fft_sizes=tuple(lcfg.stft.fft_sizes), hop_ratio=lcfg.stft.hop_ratio,
        perceptual_weighting=lcfg.stft.perceptual_weighting)


def _waveform_losses(m, lcfg: ConfigDict, gan: bool, y: jax.Array, ctx: dict) -> dict[str, jax.Array]:
    """Time-domain L1 and, in the GAN phase, LSGAN + feature matching (one discriminator pass each side)."""
    target, mask = ctx["target"], ctx["mask"]
    out = {}
    if lcfg.time_l1_weight > 0:
        out["l1"] = jnp.sum(jnp.abs(y - target)) / jnp.maximum(jnp.sum(mask), 1.0)
    if gan:
        fake = m.disc.apply({"params": ctx["disc"]}, y)
        real = jax.lax.stop_gradient(m.disc.apply({"params": ctx["disc"]}, target))
        out["adv"] = adversarial.lsgan_generator_loss(fake)
        out["fm"] = adversarial.feature_matching_loss(real, fake)
    return out


def _alignment_term(m, name: str, stats: jax.Array, proj: dict, ctx: dict) -> dict[str, jax.Array]:
    """One alignment term between the projected sampled latent and the teacher frames."""
    acfg = m.config.alignment
    z = ctx["latent"](stats)
    if acfg.subspace_ratio < 1.0:
        z, _ = align_subspace(z, acfg.subspace_ratio)
    head = functools.partial(m.proj.apply, {"params": proj})
    p, s = head(z), head(ctx["s"], method="teacher")
    s_low = None if ctx["s_low"] is None else head(ctx["s_low"], method="teacher", low=True)
    terms = alignment.alignment_terms(acfg, p, s, ctx["frame_mask"], s_low=s_low,
                                      margins_on=ctx["factors"]["margins_on"], mesh=m.mesh)
    return {name: terms[name]}


def pitch_target(m, target: jax.Array, latent_frames: int) -> tuple[jax.Array, jax.Array] | None:
    """YIN on the target [B, N] at the harmonic decoder's STFT frames: (f0 Hz, voiced) [B, F] with
    F = latent_frames * upsample, or None when the decoder is not "harmonic"."""
    mcfg = m.config.model
    if decoder_kind(mcfg) != "harmonic":
        return None
    pcfg, har, up = m.config.loss.pitch, mcfg.decoder.harmonic, mcfg.decoder.istft.upsample
    padded = jnp.pad(target, ((0, 0), (0, max(0, latent_frames * mcfg.hop - target.shape[1]))))
    f0, voiced = yin(padded, mcfg.sample_rate, mcfg.hop // up, frame_length=pcfg.frame_length, fmin=har.f0_min,
                     fmax=har.f0_max, threshold=pcfg.yin_threshold)
    return f0[:, :latent_frames * up], voiced[:, :latent_frames * up]


def _pitch_loss(m, log_f0: jax.Array, ctx: dict) -> dict[str, jax.Array]:
    """Mean |log f0 - log f0_YIN(target)| over the target's voiced, unpadded STFT frames."""
    frames = log_f0.shape[1]
    f0, voiced = ctx["pitch"]
    mcfg = m.config.model
    w = (voiced & frame_mask(ctx["mask"], frames, mcfg.hop // mcfg.decoder.istft.upsample)).astype(jnp.float32)
    return {"pitch": jnp.sum(jnp.abs(log_f0 - jnp.log(f0)) * w) / jnp.maximum(jnp.sum(w), 1.0)}


def generator_branches(m, *, gan: bool, step: jax.Array) -> list[Branch]:
    """The loss table of the generator step for the modules' config (`train.state.Modules`)."""
    cfg, lcfg = m.config, m.config.loss
    table = [
        Branch("audio", {"stft": lcfg.stft_weight}, lambda y, ctx: {"stft": stft_loss(lcfg, y, ctx["target"])},
               reference=True),
        Branch("stats", {"kl": lcfg.kl_weight},
               lambda st, ctx: {"kl": kl.vae_kl(*bottleneck.posterior(st), ctx["frame_mask"])}),
    ]
    if decoder_kind(cfg.model) == "harmonic":
        table.append(Branch("pitch", {"pitch": lcfg.pitch.weight}, functools.partial(_pitch_loss, m)))
    wave = {k: w for k, w in (("l1", lcfg.time_l1_weight), ("adv", lcfg.adversarial_weight if gan else 0.0),
                              ("fm", lcfg.feature_matching_weight if gan else 0.0)) if w > 0}
    if wave:
        table.append(Branch("audio", wave, functools.partial(_waveform_losses, m, lcfg, gan)))
    if m.aligning:
        acfg = cfg.alignment
        factors = weighting.schedule_factors(acfg.schedule, step, cfg.train.num_steps)
        scale = acfg.hyper_weight * factors["weight_scale"]
        for name in alignment.term_names(acfg):
            table.append(Branch("aligned", {name: scale * acfg.term_weights.get(name, 1.0)},
                                functools.partial(_alignment_term, m, name), adaptive=acfg.adaptive,
                                log_prefix="align"))
    return table
