"""The understanding axis as parts: one cached part per (task, feature set).

Feature sets: "latent" (the run's posterior means, read from an export of the selection),
"teacher" (hidden state `config.teacher.layer`), "teacher_layers" (every hidden state, read by
probes that learn a softmax weight per layer), "log_mel". Latent exports are collective (every
process takes its shards, `export.writer.export_model`), so `export_latents` runs in every process
before the parts; teacher and log-mel features are computed by the process that runs the part.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import numpy as np
from absl import logging

from speechvae_jax.evaluate import datasets as datasets_lib
from speechvae_jax.evaluate import features, protocol, understanding
from speechvae_jax.evaluate.parts import Part, is_cached
from speechvae_jax.export import writer
from speechvae_jax.teachers import load_teacher

SPLIT_ERRORS = (FileNotFoundError, KeyError, ValueError)
EXTRACT_CHUNK = 64  # records per feature-extraction step (bounds memory before pooling)


class Features:
    """Feature items of selections, computed at most once per process and feature set."""

    def __init__(self, workdir: str, model, config, data: datasets_lib.Datasets):
        self.workdir, self.model, self.data = workdir, model, data
        self.teacher_path = config.teacher.path if "teacher" in config else ""
        self.teacher_layer = config.teacher.layer if "teacher" in config else None
        self._teacher = None
        self._items: dict = {}

    def teacher(self):
        if self._teacher is None:
            self._teacher = load_teacher(self.teacher_path)
        return self._teacher

    def unavailable(self, fs: str) -> str:
        """Why feature set fs cannot be computed ("" when it can)."""
        if fs.startswith("teacher") and not (self.teacher_path and os.path.isdir(self.teacher_path)):
            return f"teacher path {self.teacher_path!r} not found"
        return ""

    def identity(self, fs: str) -> dict:
        """What decides fs's features (part of every cache key)."""
        if fs == "latent":
            return {"step": self.model.step, "checkpoint_hash": self.model.checkpoint_hash}
        if fs == "teacher":
            return {"teacher": self.teacher().identity, "layer": self.teacher_layer}
        if fs == "teacher_layers":
            return {"teacher": self.teacher().identity, "layers": "all hidden states, learned softmax weights"}
        return {"mel": {**features.MEL, "hop": self.model.hop}}

    def export_dir(self, sel: datasets_lib.Selection) -> str:
        """RUN/export/<split> when its manifest names this checkpoint, source and split; else
        RUN/eval/latents/<split>-<checkpoint>-<selection digest>."""
        full = os.path.join(self.workdir, "export", sel.split)
        try:
            with open(os.path.join(full, "manifest.json")) as f:
                manifest = json.load(f)
            if (manifest.get("checkpoint", {}).get("hash") == self.model.checkpoint_hash
                    and manifest.get("source", {}).get("spec") == sel.spec):
                return full
        except (OSError, ValueError):
            pass
        return os.path.join(self.workdir, "eval", "latents",
                            f"{sel.split}-{self.model.checkpoint_hash[:12]}-{sel.digest()}")

    def export_latents(self, sel: datasets_lib.Selection) -> None:
        """Export the selection's latents unless done (collective: call it in every process)."""
        out = self.export_dir(sel)
        if not os.path.exists(os.path.join(out, "manifest.json")):
            source, index = self.data.indices(sel)
            logging.info("exporting latents of %d %r utterances to %s", len(index), sel.split, out)
            writer.export_model(self.model, datasets_lib.Subset(source, index), out, source_spec=sel.spec,
                                split=sel.split)

    def _extract(self, fs: str, sel: datasets_lib.Selection, records: list[dict]) -> list[dict]:
        if fs == "latent":
            got, missing = features.latent_items(self.export_dir(sel), records)
            if missing:
                logging.warning("%d utterances of %r missing from the export (skipped): %s", len(missing),
                                sel.split, missing[:5])
            return got
        if fs == "teacher":
            return features.teacher_items(self.teacher(), self.teacher_layer, records, self.model.hop)
        if fs == "teacher_layers":
            return features.all_layer_items(self.teacher(), records, self.model.hop)
        return features.log_mel_items(records, self.model.hop)

    def items(self, fs: str, sel: datasets_lib.Selection, pooled: bool = False) -> list[dict]:
        """Feature items of every readable record of the selection, extracted EXTRACT_CHUNK records
        at a time; `pooled` keeps only the mean over valid frames (x [1, ...], mask [1]), which is
        all an utterance probe reads (mean pooling of one vector is that vector)."""
        if (fs, sel, pooled) not in self._items:
            records, _ = self.data.read(sel)
            got = []
            for i in range(0, len(records), EXTRACT_CHUNK):
                chunk = self._extract(fs, sel, records[i:i + EXTRACT_CHUNK])
                got += [_pool(it) for it in chunk] if pooled else chunk
            self._items[(fs, sel, pooled)] = got
        return self._items[(fs, sel, pooled)]


def _pool(item: dict) -> dict:
    m = np.asarray(item["mask"], bool)
    x = item["x"][m].mean(0, keepdims=True) if m.any() else item["x"][:0]
    return {**item, "x": x.astype(np.float32), "mask": np.ones(len(x), bool)}


def selections(task: dict, data: str) -> tuple[datasets_lib.Selection, datasets_lib.Selection | None]:
    """(train, test) selections of a task; test None = split train per speaker."""
    spec = task["source"] or data
    balance = task["label"] if task["selection"] == "balanced" else ""

    def sel(split, count):
        return datasets_lib.Selection(spec, split, protocol.limit(count), task["selection"], task["seed"], balance)

    return sel(task["train"], task["train_utterances"]), (sel(task["test"], task["test_utterances"])
                                                          if task["test"] else None)


def _unavailable(name: str, task: dict, sels: Sequence, data: datasets_lib.Datasets) -> dict | None:
    """A named skip when a selection's source or split does not exist, else None."""
    for sel in sels:
        try:
            data.indices(sel)
        except SPLIT_ERRORS as e:
            hint = "" if task["source"] else (f"; the {task['label']!r} labels may live in another source: set "
                                              f"understanding.tasks.{name}.source (commands:DIR for keywords)")
            return understanding.skipped(name, task, "no_data", f"{sel.spec} split {sel.split!r}: {e}{hint}")
    return None


def task_parts(feats: Features, cfg, data_spec: str, eval_dir: str) -> tuple[list[Part], dict, list]:
    """(parts to run, {task: {fs: named skip}} decided now, latent selections whose parts still need
    computing, i.e. the exports to make first)."""
    und = cfg.understanding
    parts, skips, exports = [], {}, []
    for name, task_cfg in und.tasks.items():
        task = task_cfg.to_dict()
        train_sel, test_sel = selections(task, data_spec)
        sels = [train_sel] + ([test_sel] if test_sel else [])
        gone = _unavailable(name, task, sels, feats.data)
        for fs in task["feature_sets"] or und.feature_sets:
            why = feats.unavailable(fs)
            if gone or why:
                skips.setdefault(name, {})[fs] = gone or understanding.skipped(name, task, "no_teacher", why)
                continue
            key = {"protocol": cfg.protocol, "feature_set": fs, **feats.identity(fs), "task": task,
                   "selections": [list(vars(s).values()) for s in sels], "seeds": list(und.seeds),
                   "g2p_voice": und.g2p_voice if task["label"] == "phonemes" else None}
            path = os.path.join(eval_dir, "parts", "understanding", f"{fs}__{name}.json")
            if fs == "latent" and not is_cached(path, key):
                exports += [s for s in sels if s not in exports]
            parts.append(Part(f"{name}/{fs}", path, key, _compute(feats, name, task, fs, sels, list(und.seeds))))
    return parts, skips, exports


def _compute(feats: Features, name: str, task: dict, fs: str, sels: list, seeds: list):
    def compute() -> dict:
        t0 = time.time()
        try:
            for sel in sels:
                understanding.check_labels(task, feats.data.read(sel)[0])
        except understanding.TaskSkipped as e:
            res = understanding.skipped(name, task, e.code, str(e))
        else:
            pooled = task["kind"] == "utterance"
            train = feats.items(fs, sels[0], pooled)
            if len(sels) == 2:
                test = feats.items(fs, sels[1], pooled)
            else:
                train, test = datasets_lib.speaker_split(train, task["test_fraction"], task["seed"])
            res = understanding.run_task(name, task, train, test, seeds=seeds, hop=feats.model.hop)
            if len(sels) == 1:
                res["speaker_split"] = {"train_items": len(train), "test_items": len(test),
                                        "test_fraction": task["test_fraction"], "seed": task["seed"]}
        res["wall_seconds"] = time.time() - t0
        res["datasets"] = {s.name: feats.data.read(s)[1] for s in sels}
        return res
    return compute
