"""In-house SSL teacher: HuBERT-style masked prediction of k-means clusters of MFCC frames.

`pretrain(config, workdir)` (config: configs/teacher_tiny.py):
1. reads the training split (`config.data.source`), computes MFCC(+deltas) per utterance at the
   teacher's frame grid and fits k-means (`workdir/kmeans.npz`, reused on resume);
2. trains `SSLEncoder(config.model)` plus a prediction head (layer norm + linear to the clusters) with
   cross-entropy on masked frames (weight `masking.masked_weight`) and unmasked ones (the rest),
   span masking as HuBERT, conv-extractor gradients scaled by `train.feature_grad_mult`, AdamW with
   warm-up + cosine decay;
   random crops start on the 320-sample frame grid so labels stay aligned;
3. checkpoints `workdir/pretrain_state.msgpack` every `train.checkpoint_every` steps (resumable) and
   logs `workdir/metrics.jsonl`;
4. writes the encoder (without the head and the mask embedding) to `workdir/teacher/` in the teacher
   format, with the masked-prediction accuracy on the validation split in its meta.
An existing complete teacher trained from the same config is kept (idempotent re-runs).
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import serialization
from tqdm import tqdm

from speechvae_jax.data import sources
from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.teachers import labels as labels_lib
from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.encoder import LayerNorm, SSLEncoder, normalize_audio
from speechvae_jax.teachers.store import is_complete, save_teacher

STATE_FILE = "pretrain_state.msgpack"


class PretrainModel(nn.Module):
    """Encoder + masked-prediction head: logits [B,T,K] from the last hidden state."""
    cfg: EncoderConfig
    num_clusters: int
    feature_grad_mult: float = 0.1

    @nn.compact
    def __call__(self, audio, frame_mask, mask_time):
        h = SSLEncoder(self.cfg, self.feature_grad_mult, name="encoder")(audio, frame_mask, mask_time)[-1]
        return nn.Dense(self.num_clusters, name="head")(LayerNorm(self.cfg.layer_norm_eps, name="head_norm")(h))


def _config_hash(config) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_split(spec: str, split: str, limit: int | None = None) -> list[dict]:
    """Records {"id", "audio"} of a split (`limit` evenly spaced ones); unreadable items are counted
    and logged, not fatal."""
    records, _ = sources.read_records(spec, split, limit, progress=True)
    if not records:
        raise ValueError(f"{spec} split {split!r}: no readable utterances")
    return [{"id": r["id"], "audio": np.asarray(r["audio"], np.float32)} for r in records]


def _labels(records: list[dict], lab_cfg, kmeans: dict | None, seed: int):
    feats = [labels_lib.mfcc_features(r["audio"], n_mfcc=lab_cfg.n_mfcc) for r in records]
    if kmeans is None:
        kmeans = labels_lib.fit_kmeans(feats, lab_cfg.num_clusters, lab_cfg.kmeans_frames, seed)
    return [labels_lib.assign_clusters(f, kmeans) for f in feats], kmeans


def sample_batch(rng: np.random.Generator, records: list[dict], labels: list[np.ndarray], batch_size: int,
                 crop: int, hop: int, num_frames: int) -> dict:
    """Random crops on the frame grid: audio [B,crop], mask [B,crop], labels [B,T] (-1 = none)."""
    audio = np.zeros((batch_size, crop), np.float32)
    mask = np.zeros((batch_size, crop), np.float32)
    lab = np.full((batch_size, num_frames), -1, np.int32)
    for b, i in enumerate(rng.integers(0, len(records), batch_size)):
        x, y = records[i]["audio"], labels[i]
        start = hop * int(rng.integers(0, max(len(x) - crop, 0) // hop + 1))
        piece = x[start:start + crop]
        audio[b, :len(piece)], mask[b, :len(piece)] = piece, 1.0
        ys = y[start // hop:start // hop + num_frames]
        lab[b, :len(ys)] = ys
    return {"audio": audio, "mask": mask, "labels": lab}


def _loss_fn(model, cfg, masked_weight: float):
    """HuBERT loss: masked_weight * CE(masked frames) + (1 - masked_weight) * CE(unmasked frames);
    aux = accuracy on masked frames."""
    def mean_over(values, weight):
        return (values * weight).sum() / jnp.maximum(weight.sum(), 1.0)

    def loss(params, batch, mask_time):
        audio = normalize_audio(batch["audio"], batch["mask"]) if cfg.do_normalize else batch["audio"]
        frames = frame_mask(batch["mask"], batch["labels"].shape[1], cfg.hop, cfg.receptive_field)
        logits = model.apply({"params": params}, audio, frames, mask_time).astype(jnp.float32)
        target = batch["labels"]
        known = frames & (target >= 0)
        masked, unmasked = (known & mask_time).astype(jnp.float32), (known & ~mask_time).astype(jnp.float32)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(target, 0))
        total = masked_weight * mean_over(ce, masked) + (1.0 - masked_weight) * mean_over(ce, unmasked)
        return total, mean_over(logits.argmax(-1) == target, masked)
    return loss


def _save_state(path: str, state: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.to_bytes(state))
    os.replace(tmp, path)


def pretrain(config, workdir: str) -> str:
    """Train the in-house teacher; returns the teacher directory `workdir/teacher`."""
    out_dir = os.path.join(workdir, "teacher")
    chash = _config_hash(config)
    if is_complete(out_dir):
        with open(os.path.join(out_dir, "config.json")) as f:
            done = json.load(f)
        if done.get("pretrain_config_hash") == chash:
            logging.info("teacher already pretrained at %s (config %s); skipping", out_dir, chash)
            print(f"teacher already complete at {out_dir}")
            return out_dir
        raise ValueError(f"{out_dir} holds a teacher trained from a different config "
                         f"({done.get('pretrain_config_hash')} != {chash}); use another --workdir")
    os.makedirs(workdir, exist_ok=True)
    cfg = EncoderConfig.from_dict(config.model.to_dict())
    tc, lab_cfg = config.train, config.labels
    t0 = time.time()

    train_recs = load_split(config.data.source, config.data.split)
    valid_recs = load_split(config.data.source, config.data.valid_split, limit=config.data.valid_limit)
    km_path = os.path.join(workdir, "kmeans.npz")
    kmeans = dict(np.load(km_path)) if os.path.isfile(km_path) else None
    train_labels, kmeans = _labels(train_recs, lab_cfg, kmeans, tc.seed)
    np.savez(km_path, **kmeans)
    valid_labels, _ = _labels(valid_recs, lab_cfg, kmeans, tc.seed)
    logging.info("labels ready: %d train / %d valid utterances, %d clusters (%.0f s)", len(train_recs),
                 len(valid_recs), lab_cfg.num_clusters, time.time() - t0)

    crop = config.data.crop_samples
    num_frames = cfg.num_frames(crop)
    model = PretrainModel(cfg, lab_cfg.num_clusters, tc.feature_grad_mult)
    dummy = sample_batch(np.random.default_rng(0), train_recs, train_labels, 1, crop, cfg.hop, num_frames)
    params = model.init(jax.random.PRNGKey(tc.seed), dummy["audio"], None,
                        np.zeros((1, num_frames), bool))["params"]
    warmup = min(tc.warmup_steps, tc.num_steps // 2)
    schedule = optax.warmup_cosine_decay_schedule(0.0, tc.lr, warmup, max(tc.num_steps, warmup + 1),
                                                  tc.lr * 0.05)
    tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm),
                     optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=tc.weight_decay))
    state = {"params": params, "opt_state": tx.init(params), "step": 0}
    state_path = os.path.join(workdir, STATE_FILE)
    if os.path.isfile(state_path):
        with open(state_path, "rb") as f:
            state = serialization.from_bytes(state, f.read())
        logging.info("resuming teacher pretraining at step %d", int(state["step"]))
    loss_fn = _loss_fn(model, cfg, config.masking.masked_weight)

    @jax.jit
    def train_step(params, opt_state, batch, mask_time):
        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, mask_time)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    params, opt_state, step = state["params"], state["opt_state"], int(state["step"])
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    bar = tqdm(total=tc.num_steps, initial=step, desc="teacher pretrain", unit="step")
    while step < tc.num_steps:
        rng = np.random.default_rng([tc.seed, step])
        batch = sample_batch(rng, train_recs, train_labels, tc.batch_size, crop, cfg.hop, num_frames)
        valid = (batch["labels"] >= 0)
        mask_time = labels_lib.span_mask(rng, valid, config.masking.prob, config.masking.length)
        params, opt_state, loss, acc = train_step(params, opt_state, batch, mask_time)
        step += 1
        bar.update(1)
        if step % tc.log_every == 0 or step == tc.num_steps:
            rec = {"step": step, "loss": float(loss), "masked_accuracy": float(acc),
                   "lr": float(schedule(step)), "elapsed_s": round(time.time() - t0, 1)}
            bar.set_postfix(loss=f"{rec['loss']:.3f}", acc=f"{rec['masked_accuracy']:.3f}")
            with open(metrics_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if step % tc.checkpoint_every == 0 or step == tc.num_steps:
            _save_state(state_path, {"params": params, "opt_state": opt_state, "step": step})
    bar.close()

    eval_fn = jax.jit(loss_fn)
    vl, va = [], []
    for i in range(config.data.valid_batches):
        rng = np.random.default_rng([tc.seed + 1, i])
        batch = sample_batch(rng, valid_recs, valid_labels, tc.batch_size, crop, cfg.hop, num_frames)
        mask_time = labels_lib.span_mask(rng, batch["labels"] >= 0, config.masking.prob, config.masking.length)
        loss, acc = eval_fn(params, batch, mask_time)
        vl.append(float(loss))
        va.append(float(acc))
    summary = {"steps": step, "valid_loss": float(np.mean(vl)), "valid_masked_accuracy": float(np.mean(va)),
               "chance_accuracy": float(1.0 / lab_cfg.num_clusters), "train_utterances": len(train_recs),
               "train_seconds_of_audio": float(sum(len(r["audio"]) for r in train_recs) / cfg.sample_rate),
               "wall_seconds": round(time.time() - t0, 1), "data": config.data.source}
    logging.info("teacher pretraining done: %s", summary)
    enc = {k: v for k, v in params["encoder"].items() if k != "masked_spec_embed"}
    save_teacher(out_dir, cfg, enc, default_layer=config.teacher_layer,
                 meta={"pretrain": summary, "pretrain_config_hash": chash, "source": "pretrain"})
    print(f"teacher written to {out_dir}: valid masked accuracy {summary['valid_masked_accuracy']:.3f} "
          f"(chance {summary['chance_accuracy']:.3f})")
    return out_dir
