"""The train loop: `train_and_evaluate(config, workdir)`.

One readable loop: build the mesh, the frozen teacher, the modules and a sharded train state (or
restore the latest checkpoint with its data-iterator state), then step through batches, logging,
validating, writing samples and checkpointing. SIGTERM (preemption) saves a checkpoint and returns.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from ml_collections import ConfigDict
from tqdm import tqdm

from speechvae_jax.data import pipeline
from speechvae_jax.engine import checkpoint
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.engine.logging import RunLogger
from speechvae_jax.teachers import load_teacher
from speechvae_jax.teachers.cache import CachedTargets
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules

# Config sections that must not change when a run resumes (they change shapes or the data order).
FROZEN_SECTIONS = ("model", "data", "alignment", "teacher", "mesh")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_config(saved: dict, current: dict) -> None:
    """Refuse to resume a run whose shape- or data-defining config changed (compared as JSON)."""
    saved, current = json.loads(json.dumps(saved)), json.loads(json.dumps(current))
    a = {k: v for k, v in _flat(saved).items() if k.split(".")[0] in FROZEN_SECTIONS}
    b = {k: v for k, v in _flat(current).items() if k.split(".")[0] in FROZEN_SECTIONS}
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise ValueError("the workdir holds a run with a different config; these keys differ: "
                         + ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in diff)
                         + ". Use a new --workdir, or the same config to resume.")


def validate_config(config: ConfigDict) -> None:
    n_dev = jax.device_count()
    if config.train.batch_size % n_dev:
        raise ValueError(f"train.batch_size={config.train.batch_size} must be a multiple of the "
                         f"{n_dev} devices")
    if config.train.batch_size % jax.process_count():
        raise ValueError("train.batch_size must be a multiple of the number of processes")
    if config.train.update_mode not in ("alternating", "simultaneous"):
        raise ValueError(f"train.update_mode must be 'alternating' or 'simultaneous', "
                         f"got {config.train.update_mode!r}")
    if config.alignment.scheme != "none" and not config.teacher.path:
        raise ValueError(f"alignment scheme {config.alignment.scheme!r} needs config.teacher.path "
                         "(a converted or pretrained teacher; see docs/teachers.md)")


def load_teacher_for(config: ConfigDict, mesh) -> tuple[Any, Any, int | None]:
    """(teacher, replicated params, feature width) or (None, None, None) without alignment."""
    if config.alignment.scheme == "none":
        return None, None, None

    teacher = load_teacher(config.teacher.path)
    params = jax.device_put(teacher.params, mesh_lib.replicated(mesh))
    hidden = jax.eval_shape(lambda p: teacher.apply_fn(p, jnp.zeros((1, 16000))), teacher.params)
    layer = config.teacher.layer
    if isinstance(layer, int) and not -len(hidden) <= layer < len(hidden):
        raise ValueError(f"config.teacher.layer={layer} but the teacher at {config.teacher.path} has "
                         f"{len(hidden)} hidden states (0 = embeddings)")
    return teacher, params, int(hidden[0].shape[-1])


class _Preemption:
    """Turns SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.requested = False
        self._old = signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def restore(self):
        signal.signal(signal.SIGTERM, self._old)


def _validation_batches(config: ConfigDict, mesh) -> list[dict]:
    """Fixed validation crops (the same every evaluation), as global arrays."""
    vcfg = ConfigDict(config.data.to_dict())
    vcfg.train_split = config.data.valid_split
    vcfg.num_workers = 0
    ds = pipeline.train_dataset(vcfg, global_batch_size=config.train.batch_size, seed=1234,
                                process_index=jax.process_index(),
                                process_count=jax.process_count())
    it = iter(ds)
    return [mesh_lib.global_batch(next(it), mesh) for _ in range(config.train.eval_batches)]


def train_and_evaluate(config: ConfigDict, workdir: str) -> dict:
    """Train (or resume) the run in `workdir`. Returns the last logged metrics."""
    validate_config(config)
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    mesh = mesh_lib.make_mesh(tuple(config.mesh.shape))
    mngr = checkpoint.make_manager(workdir, keep=config.train.keep_checkpoints)
    latest = mngr.latest_step()
    cfg_path = os.path.join(workdir, "config.json")
    if latest is not None and os.path.exists(cfg_path):
        with open(cfg_path) as f:
            check_resume_config(json.load(f), config.to_dict())
    if jax.process_index() == 0:
        with open(cfg_path, "w") as f:
            json.dump(config.to_dict(), f, indent=2, sort_keys=True)

    teacher, teacher_params, teacher_dim = load_teacher_for(config, mesh)
    m = Modules(config, teacher_dim, mesh)

    rng = jax.random.PRNGKey(config.train.seed)
    crop = config.data.crop_samples
    abstract = jax.eval_shape(lambda r: m.init_state(r, crop), rng)
    state_sh = mesh_lib.tree_shardings(abstract, mesh, config.mesh.fsdp_min_size)
    abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                            abstract, state_sh)

    features = None
    if teacher is not None and config.teacher.cache_dir:
        low = config.alignment.teacher_layer_low
        features = CachedTargets(config.teacher.cache_dir, teacher,
                                 [config.teacher.layer] + ([] if low is None else [low]))
    ds = pipeline.train_dataset(config.data, global_batch_size=config.train.batch_size,
                                seed=config.train.seed, process_index=jax.process_index(),
                                process_count=jax.process_count(), features=features)
    data_iter = iter(ds)
    if latest is not None:
        state, meta = checkpoint.restore(mngr, latest, abstract, data_iter)
        print(f"resumed {workdir} from step {latest}")
    else:
        init = jax.jit(lambda r: m.init_state(r, crop), out_shardings=state_sh)
        state = init(rng)

    batch_keys = ("audio", "mask") + (() if features is None else ("teacher",))
    batch_sh = {k: mesh_lib.batch_sharding(mesh) for k in batch_keys}
    rep = mesh_lib.replicated(mesh)
    t_sh = None if teacher_params is None else jax.tree.map(lambda _: rep, teacher_params)
    compiled: dict[tuple[str, bool], Any] = {}

    def step_fn(update: str, gan: bool):
        if (update, gan) not in compiled:
            compiled[(update, gan)] = steps.make_step(m, teacher, update=update, gan=gan,
                                                      shardings=(state_sh, batch_sh, t_sh, rep))
        return compiled[(update, gan)]

    eval_fn = jax.jit(steps.make_eval_step(m), in_shardings=(
        state_sh["ema"]["vae"], {k: batch_sh[k] for k in ("audio", "mask")}), out_shardings=rep)
    sample_fn = jax.jit(lambda p, a, k: steps.generate(m, p, a, k, None))
    valid = _validation_batches(config, mesh)

    tcfg = config.train
    logger = RunLogger(workdir)
    preempt = _Preemption()
    start = int(jax.device_get(state["step"]))
    gan_weights = config.loss.adversarial_weight > 0 or config.loss.feature_matching_weight > 0
    audio_sec_per_step = tcfg.batch_size * crop / config.data.sample_rate
    last: dict = {}
    t_last, steps_since = time.time(), 0

    def evaluate(step: int) -> dict:
        vals = [jax.device_get(eval_fn(state["ema"]["vae"], b)) for b in valid]
        return {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}

    def save(step: int, metrics: dict, force: bool = False) -> None:
        meta = {"step": step, "metrics": metrics, "skipped": int(jax.device_get(state["skipped"]))}
        checkpoint.save(mngr, step, state, data_iter, meta, metrics=metrics, force=force)

    bar = tqdm(total=tcfg.num_steps, initial=start, desc="train", unit="step",
               disable=jax.process_index() != 0, dynamic_ncols=True)
    step = start
    try:
        while step < tcfg.num_steps:
            batch = mesh_lib.global_batch(next(data_iter), mesh)
            gan = gan_weights and step >= tcfg.disc_start
            if not gan:
                update = "generator"
            elif tcfg.update_mode == "simultaneous":
                update = "both"
            else:
                update = "generator" if step % 2 == 0 else "discriminator"
            state, metrics = step_fn(update, gan)(state, batch, teacher_params)
            step += 1
            steps_since += 1
            bar.update(1)
            if step % tcfg.log_every == 0 or step == tcfg.num_steps:
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.time()
                rate = steps_since / max(now - t_last, 1e-9)
                t_last, steps_since = now, 0
                metrics.update({"perf/steps_per_sec": rate, "perf/wall_time": now,
                                "perf/audio_sec_per_sec": rate * audio_sec_per_step,
                                "skipped_total": float(jax.device_get(state["skipped"]))})
                logger.scalars(step, metrics)
                last = metrics
                shown = {k.split("/")[1]: f"{metrics[k]:.3f}" for k in ("loss/stft", "loss/disc")
                         if k in metrics}
                bar.set_postfix({**shown, "audio_s/s": f"{rate * audio_sec_per_step:.1f}"})
            val = None
            if step % tcfg.eval_every == 0 or step == tcfg.num_steps:
                val = evaluate(step)
                logger.scalars(step, {**val, "perf/wall_time": time.time()})
                last.update(val)
            if step % tcfg.sample_every == 0 or step == tcfg.num_steps:
                b = valid[0]
                k = min(tcfg.num_samples, b["audio"].shape[0])
                recon = sample_fn(state["ema"]["vae"], b["audio"], b["mask"])
                orig = np.asarray(jax.device_get(b["audio"] * b["mask"]))[:k]
                logger.samples(step, orig, np.asarray(jax.device_get(recon))[:k],
                               config.data.sample_rate)
            stop = preempt.requested
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils
                stop = bool(multihost_utils.process_allgather(np.array(stop)).any())
            if step % tcfg.checkpoint_every == 0 or step == tcfg.num_steps or stop:
                save(step, val if val is not None else evaluate(step), force=stop)
            if stop:
                break
    finally:
        bar.close()
        mngr.wait_until_finished()
        mngr.close()
        logger.close()
        preempt.restore()
    skipped = int(jax.device_get(state["skipped"]))
    if skipped:
        logging.warning("%d update(s) were skipped because a loss or gradient was not finite", skipped)
    if jax.process_index() == 0:
        print(f"training stopped at step {step}; checkpoints in {checkpoint.checkpoint_dir(workdir)}, "
              f"metrics in {os.path.join(workdir, 'metrics.jsonl')}, samples in "
              f"{os.path.join(workdir, 'samples')}")
    return last
