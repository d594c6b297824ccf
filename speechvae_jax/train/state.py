"""Train state: a plain dict of arrays, its initialisation and the optimisers.

state = {
  "step": int32 [],                      # generator + discriminator updates done (one per batch)
  "rng": uint32 [2],                     # base key; step keys are fold_in(rng, step)
  "gen": {"vae": ..., "proj": ...},      # generator params (projection head only when aligning)
  "ema": {"vae": ...},                   # EMA of the VAE params: what export and evaluation use
  "disc": ...,                           # discriminator params
  "gen_opt": ..., "disc_opt": ...,       # optax states
  "skipped": int32 [], "skipped_run": int32 [],   # non-finite updates skipped: in all, in a row
}
The frozen teacher is never part of it.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from speechvae_jax.engine.update import base_state
from speechvae_jax.models.discriminators import Discriminators
from speechvae_jax.models.projection import aligned_width, make_projection
from speechvae_jax.models.vae import SpeechVAE


def make_optimizer(optim: ConfigDict, lr: float) -> optax.GradientTransformation:
    """AdamW with per-step exponential decay, after global-norm clipping (0 = no clipping)."""
    schedule = optax.exponential_decay(lr, transition_steps=1, decay_rate=optim.decay)
    parts = [optax.clip_by_global_norm(optim.clip_norm)] if optim.clip_norm > 0 else []
    parts.append(optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.get("eps", 1e-8),  # runs saved
                             weight_decay=optim.weight_decay))                            # before eps: 1e-8
    return optax.chain(*parts)


class Modules:
    """The Linen modules and optimisers a config describes (built once, shared by all steps)."""

    def __init__(self, config: ConfigDict, teacher_dim: int | None, mesh=None):
        self.config = config
        self.mesh = mesh  # needed only by alignment pooling "global"
        self.vae = SpeechVAE(config.model)
        self.disc = Discriminators(config.model.discriminators)
        self.aligning = config.alignment.scheme != "none"
        if self.aligning and teacher_dim is None:
            raise ValueError(f"alignment scheme {config.alignment.scheme!r} needs a teacher (config.teacher.path)")
        self.proj = (make_projection(config.alignment, teacher_dim, config.model.latent_dim)
                     if self.aligning else None)
        self.gen_tx = make_optimizer(config.optim, config.optim.lr)
        self.disc_tx = make_optimizer(config.optim, config.optim.disc_lr)

    def init_state(self, rng: jax.Array, crop_samples: int) -> dict[str, Any]:
        """Fresh train state (call under jit with out_shardings so params are born sharded)."""
        k_vae, k_proj, k_disc = jax.random.split(rng, 3)
        audio = jnp.zeros((1, crop_samples), jnp.float32)
        gen = {"vae": self.vae.init(k_vae, audio)["params"]}
        if self.proj is not None:
            frames = -(-crop_samples // self.config.model.hop)
            width = aligned_width(self.config.model.latent_dim, self.config.alignment.subspace_ratio)
            z = jnp.zeros((1, frames, width), jnp.float32)
            gen["proj"] = self.proj.init(k_proj, z)["params"]
        disc = self.disc.init(k_disc, audio)["params"]
        return {
            **base_state(rng),
            "gen": gen,
            "ema": {"vae": jax.tree.map(jnp.copy, gen["vae"])},  # own buffers: the step donates state
            "disc": disc,
            "gen_opt": self.gen_tx.init(gen),
            "disc_opt": self.disc_tx.init(disc),
        }


EMA_SCHEDULES = ("warmup10", "release")
"""`optim.ema_schedule`: "warmup10" decays at min(decay, (1 + step) / (10 + step)); "release" is
ema-pytorch's warm-up as Stable Audio Tools builds it (power 3/4, update_after_step 1): the EMA copies
the weights while step <= after, then decays at min(decay, 1 - (1 + step - after) ** -power)."""


def ema_decay_at(step: jax.Array, decay: float, schedule: str = "warmup10", power: float = 0.75,
                 after: int = 1) -> jax.Array:
    """The effective EMA decay of the update with 0-based index `step` (float32 scalar)."""
    step = jnp.asarray(step, jnp.float32)
    if schedule == "warmup10":
        return jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    if schedule == "release":
        epoch = step - after
        return jnp.where(epoch <= 0, 0.0, jnp.clip(1.0 - (1.0 + jnp.maximum(epoch, 0.0)) ** -power, 0.0, decay))
    raise ValueError(f"optim.ema_schedule must be one of {EMA_SCHEDULES}, got {schedule!r}")


def ema_update(ema: Any, params: Any, decay: float, step: jax.Array, schedule: str = "warmup10",
               power: float = 0.75, after: int = 1) -> Any:
    """New EMA tree d * ema + (1 - d) * params, d = `ema_decay_at(step, decay, schedule, power, after)`."""
    d = ema_decay_at(step, decay, schedule, power, after)
    return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)
