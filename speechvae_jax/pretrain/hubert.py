"""In-house SSL teacher: HuBERT-style masked prediction of k-means clusters of MFCC frames.

`pretrain(config, workdir)` (config: configs/teacher_tiny.py):
1. fits k-means on MFCC(+deltas) frames of the training split at the teacher's frame grid
   (`workdir/kmeans.npz`, reused on resume);
2. trains `SSLEncoder(config.model)` plus a prediction head (layer norm + linear to the clusters) on
   the training engine: Grain crops on the 320-sample frame grid with their cluster ids and a HuBERT
   span mask, cross-entropy on masked frames (weight `masking.masked_weight`) and unmasked ones,
   conv-extractor gradients scaled by `train.feature_grad_mult`, AdamW with warm-up + cosine decay;
   Orbax checkpoints with the iterator state (exact resume), metrics.jsonl, TensorBoard;
3. writes the encoder (without the head and the mask embedding) to `workdir/teacher/` in the teacher
   format, with the masked-prediction accuracy on the validation split in its meta.
An existing complete teacher trained from the same config is kept (idempotent re-runs).
"""
from __future__ import annotations

import hashlib
import io
import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.data import pipeline, sources
from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.engine import evaluators
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.engine import update as update_lib
from speechvae_jax.engine.loop import RunResult, run
from speechvae_jax.engine.task import Task, Update
from speechvae_jax.pretrain import labels as labels_lib
from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.encoder import LayerNorm, SSLEncoder, normalize_audio
from speechvae_jax.teachers.store import is_complete, save_teacher

KMEANS_FILE = "kmeans.npz"
FROZEN_SECTIONS = ("model", "data", "labels", "masking", "mesh")


class PretrainModel(nn.Module):
    """Encoder + masked-prediction head: logits [B,T,K] from the last hidden state."""
    cfg: EncoderConfig
    num_clusters: int
    feature_grad_mult: float = 0.1

    @nn.compact
    def __call__(self, audio, frame_mask, mask_time):
        h = SSLEncoder(self.cfg, self.feature_grad_mult, name="encoder")(audio, frame_mask, mask_time)[-1]
        return nn.Dense(self.num_clusters, name="head")(LayerNorm(self.cfg.layer_norm_eps, name="head_norm")(h))


class ClusterTargets:
    """Targets that follow a training crop (`data.pipeline.train_dataset(features=...)`): the cluster ids
    of the crop's teacher frames (-1 past the utterance) and a HuBERT span mask drawn with the item's
    own generator, so batches are reproducible and resumable. Picklable for Grain workers."""

    def __init__(self, kmeans: dict, cfg: EncoderConfig, lab_cfg: ConfigDict, masking: ConfigDict, crop: int):
        self.kmeans, self.n_mfcc = kmeans, int(lab_cfg.n_mfcc)
        self.hop, self.window = cfg.hop, cfg.receptive_field
        self.frames = cfg.num_frames(crop)
        self.prob, self.length = float(masking.prob), int(masking.length)

    def crop(self, record: dict, start: int, num_samples: int, rng: np.random.Generator) -> dict:
        feats = labels_lib.mfcc_features(record["audio"], n_mfcc=self.n_mfcc, window=self.window, hop=self.hop)
        ids = labels_lib.assign_clusters(feats, self.kmeans)[start // self.hop:][:self.frames]
        labels = np.full(self.frames, -1, np.int32)
        labels[:len(ids)] = ids
        mask_time = labels_lib.span_mask(rng, (labels >= 0)[None], self.prob, self.length)[0]
        return {"labels": labels, "mask_time": mask_time}


def config_hash(config: ConfigDict) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_or_load_kmeans(config: ConfigDict, workdir: str) -> dict:
    """K-means of the training split's MFCC frames (`workdir/kmeans.npz`, computed once)."""
    path = fileio.as_path(workdir) / KMEANS_FILE
    if path.exists():
        return dict(np.load(io.BytesIO(path.read_bytes())))
    t0 = time.time()
    records, info = sources.read_records(config.data.source, config.data.train_split, progress=True)
    if not records:
        raise ValueError(f"{config.data.source} split {config.data.train_split!r}: no readable utterances")
    cfg, lab = EncoderConfig.from_dict(config.model.to_dict()), config.labels
    feats = [labels_lib.mfcc_features(r["audio"], n_mfcc=lab.n_mfcc, window=cfg.receptive_field, hop=cfg.hop)
             for r in records]
    kmeans = labels_lib.fit_kmeans(feats, lab.num_clusters, lab.kmeans_frames, config.train.seed)
    if jax.process_index() == 0:
        buf = io.BytesIO()
        np.savez(buf, **kmeans)
        fileio.ensure_writable(workdir)
        fileio.atomic_write_bytes(path, buf.getvalue())
    logging.info("k-means: %d clusters from %d utterances (%.0f s)", lab.num_clusters, info["selected"],
                 time.time() - t0)
    return kmeans


def _loss_fn(model, cfg: EncoderConfig, masked_weight: float):
    """HuBERT loss: masked_weight * CE(masked frames) + (1 - masked_weight) * CE(unmasked frames);
    aux = accuracy on masked frames."""
    def mean_over(values, weight):
        return (values * weight).sum() / jnp.maximum(weight.sum(), 1.0)

    def loss(params, batch):
        audio = normalize_audio(batch["audio"], batch["mask"]) if cfg.do_normalize else batch["audio"]
        mask_time = batch["mask_time"].astype(bool)
        frames = frame_mask(batch["mask"], batch["labels"].shape[1], cfg.hop, cfg.receptive_field)
        logits = model.apply({"params": params}, audio, frames, mask_time).astype(jnp.float32)
        target = batch["labels"]
        known = frames & (target >= 0)
        masked, unmasked = (known & mask_time).astype(jnp.float32), (known & ~mask_time).astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(target, 0))
        total = masked_weight * mean_over(ce, masked) + (1.0 - masked_weight) * mean_over(ce, unmasked)
        return total, mean_over(logits.argmax(-1) == target, masked)
    return loss


def _dataset(config: ConfigDict, targets: ClusterTargets, split: str, seed: int, batch_size: int,
             process_index: int, process_count: int):
    data = ConfigDict(config.data.to_dict())
    data.train_split = split
    return pipeline.train_dataset(data, global_batch_size=batch_size, seed=seed, process_index=process_index,
                                  process_count=process_count, features=targets)


@evaluators.register("masked_prediction")
def masked_prediction_evaluator(context: dict, *, batches: int = 4):
    """HuBERT loss and masked-frame accuracy on fixed validation crops -> {"loss", "masked_accuracy"}."""
    config, mesh = context["config"], context["mesh"]
    it = iter(_dataset(config, context["targets"], config.data.valid_split, 1234, config.train.batch_size,
                       jax.process_index(), jax.process_count()))
    valid = [mesh_lib.global_batch(next(it), mesh) for _ in range(batches)]
    fn = jax.jit(context["loss_fn"])

    def evaluate(state) -> dict[str, float]:
        vals = [jax.device_get(fn(state["params"], b)) for b in valid]
        return {"loss": float(np.mean([v[0] for v in vals])), "masked_accuracy": float(np.mean([v[1] for v in vals]))}
    return evaluate


def make_task_fn(kmeans: dict):
    """`make_task(config, mesh) -> Task` of the teacher's pre-training with fitted k-means."""

    def make_task(config: ConfigDict, mesh) -> Task:
        cfg, tc = EncoderConfig.from_dict(config.model.to_dict()), config.train
        crop = int(config.data.crop_samples)
        targets = ClusterTargets(kmeans, cfg, config.labels, config.masking, crop)
        model = PretrainModel(cfg, int(config.labels.num_clusters), float(tc.feature_grad_mult))
        warmup = min(int(tc.warmup_steps), int(tc.num_steps) // 2)
        schedule = optax.warmup_cosine_decay_schedule(0.0, tc.lr, warmup, max(int(tc.num_steps), warmup + 1),
                                                      tc.lr * 0.05)
        tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm),
                         optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=tc.weight_decay))
        loss_fn = _loss_fn(model, cfg, float(config.masking.masked_weight))

        def init(rng):
            params = model.init(rng, jnp.zeros((1, crop)), None, jnp.zeros((1, targets.frames), bool))["params"]
            return {**update_lib.base_state(rng), "params": params, "opt_state": tx.init(params)}

        def grads(state, batch, frozen):
            (loss, acc), g = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch)
            return (loss, g), {"loss": loss, "masked_accuracy": acc}

        def apply(state, out, metrics):
            loss, g = out
            params, opt_state, ok = update_lib.guarded_update(tx, state["params"], state["opt_state"], g, loss)
            new = {**state, "params": params, "opt_state": opt_state, **update_lib.count_updates(state, [ok])}
            return new, {**metrics, "lr": schedule(state["step"])}

        context = {"config": config, "mesh": mesh, "targets": targets, "loss_fn": loss_fn}
        return Task(
            name="teacher pretrain", init=init, updates={"train": Update(grads, apply)},
            schedule=lambda step: "train",
            dataset=lambda pi, pc: _dataset(config, targets, config.data.train_split, int(tc.seed),
                                            int(tc.batch_size), pi, pc),
            batch_keys=("audio", "mask", "labels", "mask_time"), frozen_sections=FROZEN_SECTIONS,
            evaluators=evaluators.build(config.evals, context), best_metric=tc.get("best_metric") or None,
            throughput=("audio_s", tc.batch_size * crop / config.data.sample_rate),
            shown=("loss", "masked_accuracy"))
    return make_task


def pretrain(config: ConfigDict, workdir: str) -> RunResult:
    """Train the in-house teacher and write it to `workdir/teacher` (see the module docstring)."""
    out_dir = str(fileio.as_path(workdir) / "teacher")
    chash = config_hash(config)
    if is_complete(out_dir):
        done = fileio.read_json(fileio.as_path(out_dir) / "config.json")
        if done.get("pretrain_config_hash") != chash:
            raise ValueError(f"{out_dir} holds a teacher trained from a different config "
                             f"({done.get('pretrain_config_hash')} != {chash}); use another --workdir")
        print(f"teacher already complete at {out_dir}", flush=True)
        return RunResult(workdir=workdir, step=int(done.get("pretrain", {}).get("steps", 0)), metrics={})
    t0 = time.time()
    kmeans = fit_or_load_kmeans(config, workdir)
    result = run(config, workdir, make_task_fn(kmeans))
    if result.stopped_by is not None:
        return result
    cfg = EncoderConfig.from_dict(config.model.to_dict())
    params = jax.device_get(result.state["params"])
    summary = {"steps": result.step, "valid_loss": result.metrics.get("val/loss"),
               "valid_masked_accuracy": result.metrics.get("val/masked_accuracy"),
               "chance_accuracy": 1.0 / int(config.labels.num_clusters),
               "wall_seconds": round(time.time() - t0, 1), "data": config.data.source}
    if jax.process_index() == 0:
        enc = {k: v for k, v in params["encoder"].items() if k != "masked_spec_embed"}
        save_teacher(out_dir, cfg, enc, default_layer=int(config.teacher_layer),
                     meta={"pretrain": summary, "pretrain_config_hash": chash, "source": "pretrain"})
        print(f"teacher written to {out_dir}: valid masked accuracy {summary['valid_masked_accuracy']} "
              f"(chance {summary['chance_accuracy']:.3f})", flush=True)
    return result
