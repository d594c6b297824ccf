"""Checkpoints of a run (Orbax) and loading a trained model for inference.

A checkpoint step holds three items: `state` (the train state dict of train/state.py, sharded
arrays), `data_iter` (the Grain iterator state, one JSON file per process, so a resumed run continues
the exact data order) and `meta` (step, validation metrics, config). The frozen teacher is never
saved. The last `keep` checkpoints are kept, plus the best one by validation MR-STFT loss.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from speechvae_jax.models import bottleneck
from speechvae_jax.models.vae import SpeechVAE

BEST_METRIC = "val/stft"


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def make_manager(workdir: str, keep: int, *, read_only: bool = False) -> ocp.CheckpointManager:
    policy = pp.AnyPreservationPolicy([
        pp.LatestN(keep),
        pp.BestN(get_metric_fn=lambda m: m[BEST_METRIC], reverse=True, n=1),
    ])
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, create=not read_only,
                                           read_only=read_only, enable_async_checkpointing=True,
                                           cleanup_tmp_directories=not read_only)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                 item_names=("state", "data_iter", "meta"))


def save(mngr: ocp.CheckpointManager, step: int, state: Any, data_iter: Any, meta: dict,
         metrics: dict | None = None, force: bool = False) -> None:
    """Asynchronous save; `metrics` (with BEST_METRIC) feeds the best-checkpoint policy."""
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data_iter=grain.checkpoint.CheckpointSave(data_iter),
        meta=ocp.args.JsonSave(meta),
    ), metrics=metrics, force=force)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any, data_iter: Any):
    """Restore (state, meta) at `step` into the shardings of `abstract_state`; sets the iterator."""
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data_iter=grain.checkpoint.CheckpointRestore(data_iter),
        meta=ocp.args.JsonRestore(),
    ))
    return out["state"], out["meta"]


def params_hash(tree: Any) -> str:
    """A short content hash of a tree of arrays (order of leaves, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str(arr.shape).encode() + str(arr.dtype).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def load_config(workdir: str) -> ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run directory?")
    with open(path) as f:
        return ConfigDict(json.load(f))


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
        h = self.vae.apply({"params": params}, audio, method="encode_features")
        stats = self.vae.apply({"params": params}, h, method="encode_head").astype(jnp.float32)
        mean, scale = bottleneck.split_stats(stats)
        frames = mean.shape[1]
        m = jnp.pad(mask, ((0, 0), (0, frames * self.hop - mask.shape[1])))
        frame_mask = m[:, :: self.hop] > 0
        return mean, bottleneck.sigma_from_scale(scale), frame_mask

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
    config = load_config(workdir)
    mngr = make_manager(workdir, keep=1, read_only=True)
    steps = mngr.all_steps()
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir(workdir)}")
    step = max(steps) if step is None else step
    if step not in steps:
        raise ValueError(f"step {step} not in {checkpoint_dir(workdir)} (have {sorted(steps)})")
    # Restore only the EMA generator, onto this process's first device, whatever topology saved it.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    shapes = jax.eval_shape(SpeechVAE(config.model).init, jax.random.PRNGKey(0),
                            jnp.zeros((1, int(config.model.hop)), jnp.float32))["params"]
    target = {"ema": {"vae": jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)}}
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)))
    params = restored["state"]["ema"]["vae"]
    mngr.close()
    return InferenceModel(config=config, params=params, step=int(step),
                          checkpoint_hash=params_hash(params))
