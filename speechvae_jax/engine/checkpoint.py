"""Checkpoints of a run (Orbax).

A checkpoint step holds three items: `state` (the train state dict of train/state.py, sharded
arrays), `data_iter` (the Grain iterator state, one JSON file per process, so a resumed run continues
the exact data order) and `meta` (step, validation metrics, config). The frozen teacher is never
saved. The last `keep` checkpoints are kept, plus the best one by validation MR-STFT loss.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

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
