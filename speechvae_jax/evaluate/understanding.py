"""SUPERB-style understanding tasks: fixed probe architectures and budgets on frozen frame features.

Each task names its train and test splits, the label it reads from standard utterances, the probe
kind and a fixed budget; every task runs every head in `heads` over the seeds (mean and spread).
Inputs are lists of feature items (`evaluate.features`): {"x" [T,D], "mask" [T], **labels}."""
from __future__ import annotations

import numpy as np

from speechvae_jax.constants import LATENT_HOP
from speechvae_jax.evaluate import probes
from speechvae_jax.export.records import frame_timings

SEEDS = (0, 1, 2)
HEADS = ("linear", "mlp")  # every head any task uses

# name -> fixed protocol. metric: the reported figure (accuracy: higher is better; error rates: lower).
TASKS = {
    "phoneme_frame": {"kind": "frame", "train": "train", "test": "test", "label": "phonemes",
                      "metric": "accuracy", "heads": HEADS, "steps": 1500, "batch_size": 256, "lr": 1e-3},
    "phoneme_ctc": {"kind": "ctc", "train": "train", "test": "test", "label": "phonemes",
                    "metric": "per", "heads": ("mlp",), "steps": 600, "batch_size": 8, "lr": 3e-3,
                    "context": 2},
    "speaker_id": {"kind": "utterance", "train": "train", "test": "valid", "label": "speaker",
                   "metric": "accuracy", "heads": HEADS, "steps": 1000, "batch_size": 64, "lr": 1e-3},
    "keyword": {"kind": "utterance", "train": "keywords_train", "test": "keywords_test",
                "label": "keyword", "metric": "accuracy", "heads": HEADS, "steps": 1000, "batch_size": 64,
                "lr": 1e-3},
}


class TaskSkipped(ValueError):
    """The data lacks what a task needs (labels, classes, utterances); the reason is reported."""


def _pad(items: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Feature items -> (x [B,Tmax,D], mask [B,Tmax])."""
    t = max(len(it["x"]) for it in items)
    x = np.zeros((len(items), t, items[0]["x"].shape[-1]), np.float32)
    m = np.zeros((len(items), t), np.float32)
    for i, it in enumerate(items):
        x[i, :len(it["x"])] = it["x"]
        m[i, :len(it["x"])] = it["mask"]
    return x, m


def tokens_of(item: dict, label: str) -> list[str]:
    """CTC targets: the space-separated tokens of label `label` (e.g. phonemes)."""
    return str(item.get(label, "")).split()


def frame_labels(item: dict, hop: int = LATENT_HOP) -> np.ndarray:
    """Phoneme id strings per frame [T] (object; None where no phoneme covers the frame), from the
    sample-domain timings `phoneme_starts` / `phoneme_ends` (later spans win on overlaps)."""
    t = len(item["x"])
    phones = item.get("phonemes", "").split()
    starts, ends = item.get("phoneme_starts"), item.get("phoneme_ends")
    out = np.full(t, None, object)
    if starts is None or ends is None or len(phones) != len(starts) or len(phones) == 0:
        return out
    sf, ef = frame_timings(np.asarray(starts), np.asarray(ends), hop, t)
    for p, a, b in zip(phones, sf, ef):
        out[a:b] = p
    return out


def _vocab(values) -> dict:
    return {v: i for i, v in enumerate(sorted(set(values)))}


def probe_inputs(task: dict, train: list[dict], test: list[dict], hop: int = LATENT_HOP) -> tuple[dict, dict]:
    """(kwargs for the task's probe function, info) from feature items; raises TaskSkipped."""
    kind, label = task["kind"], task["label"]
    if not train or not test:
        raise TaskSkipped(f"no utterances (train {len(train)}, test {len(test)})")
    if kind == "utterance":
        tr = [it for it in train if it.get(label)]
        vocab = _vocab(it[label] for it in tr)
        te = [it for it in test if it.get(label) in vocab]
        if len(vocab) < 2 or not te:
            raise TaskSkipped(f"label {label!r}: {len(vocab)} classes in train, {len(te)} usable test items")
        (xs, ms), (xt, mt) = _pad(tr), _pad(te)
        kwargs = dict(train_x=xs, train_mask=ms, train_y=np.array([vocab[it[label]] for it in tr]),
                      test_x=xt, test_mask=mt, test_y=np.array([vocab[it[label]] for it in te]),
                      num_classes=len(vocab))
        return kwargs, {"classes": len(vocab), "train_items": len(tr), "test_items": len(te),
                        "test_items_unknown_label": len(test) - len(te)}
    if kind == "frame":
        lab = {id(it): frame_labels(it, hop) for it in train + test}
        vocab = _vocab(p for it in train for p in lab[id(it)] if p is not None)
        if len(vocab) < 2:
            raise TaskSkipped("no phoneme timings in the training utterances")

        def flat(items):
            xs, ys = [], []
            for it in items:
                keep = np.array([p in vocab for p in lab[id(it)]]) & it["mask"]
                xs.append(it["x"][keep])
                ys += [vocab[p] for p in lab[id(it)][keep]]
            return np.concatenate(xs), np.array(ys, np.int32)

        (xs, ys), (xt, yt) = flat(train), flat(test)
        if not len(yt):
            raise TaskSkipped("no phoneme timings in the test utterances")
        return (dict(train_x=xs, train_y=ys, test_x=xt, test_y=yt, num_classes=len(vocab)),
                {"classes": len(vocab), "train_frames": len(ys), "test_frames": len(yt)})
    tr = [it for it in train if tokens_of(it, label)]
    te = [it for it in test if tokens_of(it, label)]
    vocab = _vocab(tok for it in tr + te for tok in tokens_of(it, label))
    if not tr or not te:
        raise TaskSkipped(f"no {label!r} transcriptions (train {len(tr)}, test {len(te)})")
    (xs, ms), (xt, mt) = _pad(tr), _pad(te)
    kwargs = dict(train_x=xs, train_mask=ms, test_x=xt, test_mask=mt,
                  train_labels=[[vocab[t] for t in tokens_of(it, label)] for it in tr],
                  test_labels=[[vocab[t] for t in tokens_of(it, label)] for it in te],
                  num_tokens=len(vocab), context=task["context"])
    return kwargs, {"tokens": len(vocab), "train_items": len(tr), "test_items": len(te)}


PROBES = {"frame": probes.train_frame_probe, "utterance": probes.train_utterance_probe,
          "ctc": probes.train_ctc_probe}


def run_task(name: str, train: list[dict], test: list[dict], *, seeds: tuple[int, ...] | None = None,
             hop: int = LATENT_HOP) -> dict:
    """Run task `name` on feature items: {"task", "metric", "info", "heads": {head: over_seeds
    result with "value_mean"/"value_std" = the task metric}} or {"skipped": reason}."""
    task, seeds = TASKS[name], SEEDS if seeds is None else seeds
    try:
        kwargs, info = probe_inputs(task, train, test, hop)
    except TaskSkipped as e:
        return {"task": name, "metric": task["metric"], "skipped": str(e)}
    key = "error_rate" if task["kind"] == "ctc" else "accuracy"
    out = {"task": name, "metric": task["metric"], "info": info, "heads": {}}
    for head in task["heads"]:
        res = probes.over_seeds(PROBES[task["kind"]], seeds, head=head, steps=task["steps"],
                                batch_size=task["batch_size"], lr=task["lr"], **kwargs)
        res["value_mean"], res["value_std"] = res["mean"][key], res["std"][key]
        out["heads"][head] = res
    return out
