"""`speechvae export`: encode whole utterances to ArrayRecord shards plus a manifest; `--verify`.

Shard K holds the records of source indices [K * shard_size, (K + 1) * shard_size) in index order,
so the output does not depend on the number of processes: process p writes the shards K with
K % process_count == p, then all meet at a barrier and process 0 writes `manifest.json`. A shard is
written to a temporary name and renamed when complete, then its summary is written the same way;
a shard with a summary is finished, and a re-run keeps it. DIR may be an object-store prefix
(gs://...): shards are then written on local disk and uploaded whole. Record format: `records.py`; file
layout: `layout.py`; manifest fields: docs/export.md.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np
from absl import logging
from array_record.python import array_record_module
from tqdm import tqdm

from speechvae_jax import fileio
from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.data.audio import AudioError
from speechvae_jax.data.sources import open_nonempty
from speechvae_jax.export import codec, layout, records
from speechvae_jax.inference import load_for_inference

FORMAT = "speechvae-latents/1"
WRITER_OPTIONS = "group_size:1,uncompressed"
MODES = ("mean", "sample")
DTYPES = ("float16", "float32")


class ExportError(RuntimeError):
    """An export directory that cannot be resumed, finished or verified (the reason says why)."""


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What decides an export's content, plus how it is computed (buckets do not change content)."""
    mode: str = "mean"
    dtype: str = "float16"
    seed: int = 0
    shard_size: int = 256
    buckets: codec.Buckets = codec.Buckets()

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")


def export_latents(workdir: str, data_spec: str, out_dir: str, *, split: str = "test", mode: str = "mean",
                   dtype: str = "float16", step: int | None = None, shard_size: int = 256,
                   buckets: codec.Buckets = codec.Buckets(), seed: int = 0) -> dict | None:
    """Export the latents of `data_spec`/`split` encoded by the EMA model of `workdir`.

    Returns the manifest on process 0 (None on the others).
    """
    model = load_for_inference(workdir, step)
    source = open_nonempty(data_spec, split)
    options = ExportOptions(mode=mode, dtype=dtype, seed=seed, shard_size=shard_size, buckets=buckets)
    return export_model(model, source, out_dir, source_spec=data_spec, split=split, options=options)


def export_model(model, source, out_dir: str, *, source_spec: str, split: str,
                 options: ExportOptions = ExportOptions()) -> dict | None:
    """Export with an `InferenceModel` and a random-access source of standard utterances."""
    pi, pc = jax.process_index(), jax.process_count()
    out_dir = os.fspath(fileio.ensure_writable(out_dir))
    num_inputs = len(source)
    num_shards = max(1, -(-num_inputs // options.shard_size))
    settings = _settings(model, source_spec, split, num_inputs, num_shards, options)
    _claim(out_dir, settings, pi)
    context = codec.encoder_context(model)
    mine = [k for k in range(num_shards) if k % pc == pi]
    todo = [k for k in mine if not _shard_done(out_dir, k, num_shards)]
    if len(todo) < len(mine):
        logging.info("export: process %d keeps %d finished shards", pi, len(mine) - len(todo))
    bar = tqdm(total=len(todo), desc=f"export p{pi}", unit="shard", disable=not todo)
    for k in todo:
        summary = _export_shard(model, source, out_dir, k, num_shards, context, options, pi)
        bar.update(1)
        bar.set_postfix(records=summary["records"], skipped=len(summary["skipped"]))
    bar.close()
    if pc > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("speechvae export: all shards written")
    if pi != 0:
        return None
    manifest = build_manifest(out_dir, settings, context)
    fileio.atomic_write_json(os.path.join(out_dir, layout.MANIFEST), manifest)
    logging.info("export: %d records (%.1f s of audio), %d skipped -> %s", manifest["counts"]["records"],
                 manifest["total_seconds"], manifest["counts"]["skipped"], out_dir)
    return manifest


def _settings(model, source_spec, split, num_inputs, num_shards, options: ExportOptions) -> dict:
    settings = {
        "format": FORMAT,
        "source": {"spec": source_spec, "split": split, "num_inputs": num_inputs},
        "model": {"config": model.config.model.to_dict(), "hop": model.hop, "latent_dim": model.latent_dim},
        "checkpoint": {"step": int(model.step), "hash": model.checkpoint_hash},
        "mode": options.mode, "dtype": options.dtype,
        "seed": int(options.seed) if options.mode == "sample" else None,
        "shard_size": int(options.shard_size), "num_shards": num_shards,
        "max_seconds": float(options.buckets.max_seconds),
    }
    return json.loads(fileio.to_json(settings))


def _claim(out_dir: str, settings: dict, pi: int) -> None:
    """Write settings.json, or check that an existing one (a resumed export) is the same."""
    path = os.path.join(out_dir, layout.SETTINGS)
    if fileio.exists(path):
        old = fileio.read_json(path)
        if old != settings:
            diff = sorted(k for k in settings if old.get(k) != settings[k])
            raise ExportError(f"{out_dir} holds an export with different settings ({', '.join(diff)}); "
                              "use another --out or delete it")
        return
    fileio.atomic_write_json(path, settings)


def _shard_done(out_dir: str, k: int, num_shards: int) -> bool:
    summary = os.path.join(out_dir, layout.summary_name(k, num_shards))
    shard = os.path.join(out_dir, layout.shard_name(k, num_shards))
    if not (fileio.exists(summary) and fileio.exists(shard)):
        return False
    return fileio.file_size(shard) == fileio.read_json(summary)["bytes"]


def _load(source, i: int, max_samples: int) -> tuple[str, np.ndarray, dict]:
    """-> (id, audio float32 [N], utterance); raises AudioError for an unusable item."""
    utt = source[i]
    uid = utt.get("id")
    uid = uid.decode() if isinstance(uid, bytes) else uid
    if not isinstance(uid, str) or not uid:
        raise AudioError(f"index {i}", f"missing or empty id: {uid!r}")
    audio = np.asarray(utt.get("audio", np.zeros(0)))
    if audio.ndim != 1 or audio.size == 0 or audio.dtype.kind != "f":
        raise AudioError(uid, f"audio must be a non-empty float [N] array, got {audio.dtype} {audio.shape}")
    if audio.size > max_samples:
        raise AudioError(uid, f"too long: {audio.size / SAMPLE_RATE:.1f} s > limit "
                              f"{max_samples / SAMPLE_RATE:.1f} s (raise max_seconds to encode it in windows)")
    if not np.all(np.isfinite(audio)):
        raise AudioError(uid, "audio has non-finite samples")
    return uid, audio.astype(np.float32), utt


def _latent(mean, sigma, options: ExportOptions, index: int) -> np.ndarray:
    """Posterior mean, or mean + sigma * eps with eps fixed by (seed, source index); -> export dtype."""
    z = mean
    if options.mode == "sample":
        eps = np.random.default_rng([options.seed, index]).standard_normal(mean.shape, np.float32)
        z = mean + sigma * eps
    return z.astype(options.dtype)


def _export_shard(model, source, out_dir, k, num_shards, context, options: ExportOptions, pi) -> dict:
    lo = k * options.shard_size
    hi = min(len(source), lo + options.shard_size)
    max_samples = int(options.buckets.max_seconds * SAMPLE_RATE)
    loaded, skipped = [], []
    for i in range(lo, hi):
        try:
            loaded.append((i,) + _load(source, i, max_samples))
        except AudioError as err:
            logging.warning("export: skipping index %d: %s", i, err)
            skipped.append({"index": i, "id": err.where, "reason": err.reason})
    encoded = codec.encode_utterances(model, [a for _, _, a, _ in loaded], context, options.buckets)
    blobs, ids, speakers, latents = [], [], [], []
    seconds = 0.0
    for (i, uid, audio, utt), (mean, sigma) in zip(loaded, encoded):
        z = _latent(mean, sigma, options, i)
        if not np.all(np.isfinite(z)):
            logging.warning("export: skipping %s: non-finite latent", uid)
            skipped.append({"index": i, "id": uid, "reason": f"non-finite latent in {options.dtype}"})
            continue
        labels = records.labels_of(utt, model.hop, z.shape[0])
        blobs.append(records.encode_record(uid, z, audio.size, labels))
        ids.append(uid)
        speakers.append(str(utt.get("speaker", "")))
        latents.append(z.astype(np.float64))
        seconds += audio.size / SAMPLE_RATE
    skipped.sort(key=lambda s: s["index"])
    path = os.path.join(out_dir, layout.shard_name(k, num_shards))
    layout.remove_stale(path)
    tmp = fileio.staging_path(path, f"p{pi}")
    writer = array_record_module.ArrayRecordWriter(tmp, WRITER_OPTIONS)
    for blob in blobs:
        writer.write(blob)
    writer.close()
    frames = np.concatenate(latents) if latents else np.zeros((0, model.latent_dim))
    summary = {
        "file": os.path.basename(path), "records": len(blobs), "first_index": lo, "end_index": hi,
        "frames": int(frames.shape[0]), "seconds": seconds,
        "mean": frames.mean(0).tolist() if len(frames) else [0.0] * model.latent_dim,
        "m2": ((frames - frames.mean(0)) ** 2).sum(0).tolist() if len(frames) else [0.0] * model.latent_dim,
        "bytes": os.path.getsize(tmp), "sha256": layout.sha256_file(tmp), "ids": ids, "speakers": speakers,
        "skipped": skipped,
    }
    fileio.publish(tmp, path)
    summary_path = os.path.join(out_dir, layout.summary_name(k, num_shards))
    layout.remove_stale(summary_path)
    fileio.atomic_write_json(summary_path, summary)
    return summary


def _combine_stats(summaries: list[dict], dim: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and std over all frames from per-shard (count, mean, M2) (Chan et al.)."""
    n, mean, m2 = 0, np.zeros(dim), np.zeros(dim)
    for s in summaries:
        nb = s["frames"]
        if nb == 0:
            continue
        mb, m2b = np.asarray(s["mean"]), np.asarray(s["m2"])
        delta = mb - mean
        total = n + nb
        mean = mean + delta * nb / total
        m2 = m2 + m2b + delta ** 2 * n * nb / total
        n = total
    std = np.sqrt(m2 / n) if n else np.zeros(dim)
    return mean, std, n


def build_manifest(out_dir: str, settings: dict, context: tuple[int, int]) -> dict:
    """Gather the shard summaries of a finished export into the manifest dict."""
    num_shards = settings["num_shards"]
    summaries = []
    for k in range(num_shards):
        path = os.path.join(out_dir, layout.summary_name(k, num_shards))
        if not _shard_done(out_dir, k, num_shards):
            raise ExportError(f"shard {k} of {out_dir} is not finished ({path} missing or its shard "
                              "file has the wrong size); re-run the same export command to finish it")
        summaries.append(fileio.read_json(path))
    model_info = settings["model"]
    mean, std, frames = _combine_stats(summaries, model_info["latent_dim"])
    skipped = [s for summ in summaries for s in summ["skipped"]]
    return {
        **settings,
        "sample_rate": SAMPLE_RATE,
        "hop": model_info["hop"],
        "frame_rate": SAMPLE_RATE / model_info["hop"],
        "latent_dim": model_info["latent_dim"],
        "encoder_context_frames": list(context),
        "record_encoding": "msgpack map; arrays as ext type 1 [dtype, shape, bytes] (docs/export.md)",
        "counts": {"inputs": settings["source"]["num_inputs"], "records": sum(s["records"] for s in summaries),
                   "skipped": len(skipped), "frames": frames},
        "total_seconds": sum(s["seconds"] for s in summaries),
        "latent_mean": mean.tolist(),
        "latent_std": std.tolist(),
        "shards": [{k: s[k] for k in ("file", "records", "first_index", "end_index", "frames", "bytes",
                                      "sha256")} for s in summaries],
        "skipped": skipped,
    }


def verify_export(out_dir: str) -> dict[str, Any]:
    """Check every shard against the manifest (size, sha256, record count, ids, latent shape and
    dtype, finiteness); raises ExportError listing all problems, else returns counts. The shards of
    an object-store export are fetched afresh and checked on local disk."""
    path = os.path.join(out_dir, layout.MANIFEST)
    if not fileio.exists(path):
        raise ExportError(f"{path} not found: the export is unfinished or {out_dir} is not an export")
    manifest = fileio.read_json(path)
    problems, checked = [], 0
    for shard in manifest["shards"]:
        fpath = os.path.join(out_dir, shard["file"])
        if not fileio.exists(fpath):
            problems.append(f"{shard['file']}: missing")
            continue
        if (size := fileio.file_size(fpath)) != shard["bytes"]:
            problems.append(f"{shard['file']}: {size} bytes, manifest says {shard['bytes']}")
            continue
        local = layout.local_shard(out_dir, shard, fresh=True)
        if layout.sha256_file(local) != shard["sha256"]:
            problems.append(f"{shard['file']}: sha256 differs from the manifest")
            continue
        problems += _check_records(local, fpath, shard, manifest)
        checked += shard["records"]
    if problems:
        raise ExportError(f"{out_dir}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    report = {"shards": len(manifest["shards"]), "records": checked}
    print(f"{out_dir}: OK ({report['shards']} shards, {report['records']} records match the manifest)")
    return report


def _check_records(local: str, fpath: str, shard: dict, manifest: dict) -> list[str]:
    """Records of the shard `fpath` (read from its local path `local`) against its summary."""
    name, problems = os.path.basename(fpath), []
    summary = fileio.read_json(layout.summary_of(fpath))
    rdr = array_record_module.ArrayRecordReader(local)
    try:
        n = rdr.num_records()
        if n != shard["records"]:
            return [f"{name}: {n} records, manifest says {shard['records']}"]
        for j, blob in enumerate(rdr.read_all()):
            rec = records.decode_record(blob, keep_dtype=True)
            z = rec["latent"]
            where = f"{name} record {j} ({rec.get('id')!r})"
            if rec.get("id") != summary["ids"][j]:
                problems.append(f"{where}: id differs from the shard summary ({summary['ids'][j]!r})")
            if "speakers" in summary and rec.get("speaker", "") != summary["speakers"][j]:
                problems.append(f"{where}: speaker differs from the shard summary ({summary['speakers'][j]!r})")
            if z.dtype != np.dtype(manifest["dtype"]) or z.shape != (rec["num_frames"], manifest["latent_dim"]):
                problems.append(f"{where}: latent {z.dtype} {z.shape}, expected {manifest['dtype']} "
                                f"({rec['num_frames']}, {manifest['latent_dim']})")
            elif not np.all(np.isfinite(z)):
                problems.append(f"{where}: non-finite latent")
    finally:
        rdr.close()
    return problems
