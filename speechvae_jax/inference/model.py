"""A trained run, loaded for encoding and decoding (what export, decode and evaluate use).

`load_for_inference(workdir, step=None)` restores only the EMA generator of a checkpoint, onto this
process's first device, whatever topology saved it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.engine import checkpoint, rundir
from speechvae_jax.models.vae import SpeechVAE


@dataclasses.dataclass
class InferenceModel:
    """A trained VAE (EMA weights) ready to encode and decode. Shapes: audio [B,N], z [B,T,L]."""

    config: ConfigDict
    params: Any
    step: int
    checkpoint_hash: str

    def __post_init__(self):
        self.vae = SpeechVAE(self.config.model)
        self.hop = int(self.config.model.hop)
        self.latent_dim = int(self.config.model.latent_dim)
        self._encode = jax.jit(self._encode_impl)
        self._decode = jax.jit(self._decode_impl)

    def _encode_impl(self, params, audio, mask):
        mean, sigma = self.vae.apply({"params": params}, audio, method="encode")
        return mean, sigma, frame_mask(mask, mean.shape[1], self.hop)

    def _decode_impl(self, params, z):
        return self.vae.apply({"params": params}, z, method="decode").astype(jnp.float32)

    def encode(self, audio, mask=None):
        """-> (mean [B,T,L], sigma [B,T,L], frame_mask [B,T] bool), T = ceil(N / hop)."""
        audio = jnp.asarray(audio, jnp.float32)
        mask = jnp.ones_like(audio) if mask is None else jnp.asarray(mask, jnp.float32)
        return self._encode(self.params, audio, mask)

    def decode(self, z):
        """-> audio [B, T*hop]."""
        return self._decode(self.params, jnp.asarray(z, jnp.float32))


def load_for_inference(workdir: str, step: int | None = None) -> InferenceModel:
    """The EMA generator of a run at `step` (default: the latest checkpoint)."""
    config = rundir.load_config(workdir)
    ckpts = checkpoint.Checkpoints(workdir, read_only=True)
    steps = ckpts.steps()
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {ckpts.directory}")
    step = max(steps) if step is None else step
    if step not in steps:
        raise ValueError(f"step {step} not in {ckpts.directory} (have {steps})")
    # Restore only the EMA generator, onto this process's first device, whatever topology saved it.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shapes = jax.eval_shape(SpeechVAE(config.model).init, jax.random.PRNGKey(0),
                            jnp.zeros((1, int(config.model.hop)), jnp.float32))["params"]
    target = {"ema": {"vae": jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)}}
    params = ckpts.restore_subtree(step, target)["ema"]["vae"]
    ckpts.close()
    return InferenceModel(config=config, params=params, step=int(step),
                          checkpoint_hash=checkpoint.params_hash(params))
