"""SUPERB-style understanding tasks: fixed probe architectures and budgets on frozen frame features.

A task (one entry of the eval config's `understanding.tasks`, `evaluate.protocol.task`) names the
label it reads from standard utterances, the probe kind and a fixed budget; every task runs each of
its heads over the seeds (mean and spread). Inputs are lists of feature items (`evaluate.features`):
{"x" [T,D] or [T,K,D] (K layers: layer-weighted probes), "mask" [T], **labels}.

A task the data cannot serve is a *named skip*: {"task", "metric", "skipped": reason, "skip": code}
with code one of SKIP_CODES, never a silent omission.
"""
from __future__ import annotations

import numpy as np

from speechvae_jax.constants import LATENT_HOP
from speechvae_jax.evaluate import probes
from speechvae_jax.export.records import frame_timings

SKIP_CODES = {
    "no_data": "the split or source is missing or has no readable utterances",
    "no_labels": "the utterances carry no such label (no label set)",
    "no_timings": "phonemes without timings (e.g. G2P from transcripts): no frame-level targets",
    "no_teacher": "no teacher to extract reference features from",
}


class TaskSkipped(ValueError):
    """The data lacks what a task needs; `code` (a SKIP_CODES key) and the reason are reported."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code


def skipped(name: str, task: dict, code: str, reason: str) -> dict:
    """The report entry of a task that did not run."""
    return {"task": name, "metric": task["metric"], "skipped": reason, "skip": code}


def _pooled(items: list[dict]) -> np.ndarray:
    """Feature items -> their mean over valid frames [B,(K,)D], one item at a time (nothing is padded
    to the longest utterance: a long recording costs its own frames only)."""
    return np.stack([probes.mean_pool(it["x"][None], it["mask"][None])[0] for it in items])


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


def check_labels(task: dict, records: list[dict]) -> None:
    """Raise TaskSkipped when no record carries what the task reads (checked before any feature is
    computed): the label (utterance tasks), tokens (CTC) or phoneme timings (frame tasks)."""
    label = task["label"]
    if task["kind"] == "utterance" and not any(r.get(label) for r in records):
        raise TaskSkipped("no_labels", f"no {label!r} labels in the {len(records)} utterances")
    if task["kind"] == "ctc" and not any(tokens_of(r, label) for r in records):
        raise TaskSkipped("no_labels", f"no {label!r} in the {len(records)} utterances (folder sources need "
                                       "transcripts, converted by espeak-ng G2P)")
    if task["kind"] == "frame" and not any(len(r.get("phoneme_starts", ())) for r in records):
        with_phonemes = sum(1 for r in records if r.get("phonemes"))
        raise TaskSkipped("no_timings", f"no phoneme timings in the {len(records)} utterances ({with_phonemes} "
                                        "have phonemes, e.g. from G2P, but none has timings); the frame-level "
                                        "probe runs only where timings exist")


def _vocab(values) -> dict:
    return {v: i for i, v in enumerate(sorted(set(values)))}


def _utterance_inputs(label: str, train: list[dict], test: list[dict]) -> tuple[dict, dict]:
    tr = [it for it in train if it.get(label)]
    if not tr:
        raise TaskSkipped("no_labels", f"no {label!r} labels in the training utterances")
    vocab = _vocab(it[label] for it in tr)
    te = [it for it in test if it.get(label) in vocab]
    if len(vocab) < 2 or not te:
        raise TaskSkipped("no_labels", f"label {label!r}: {len(vocab)} classes in train, "
                                       f"{len(te)} usable test items")
    kwargs = dict(train_x=_pooled(tr), train_y=np.array([vocab[it[label]] for it in tr]),
                  test_x=_pooled(te), test_y=np.array([vocab[it[label]] for it in te]),
                  num_classes=len(vocab))
    return kwargs, {"classes": len(vocab), "train_items": len(tr), "test_items": len(te),
                    "test_items_unknown_label": len(test) - len(te)}


def _frame_inputs(train: list[dict], test: list[dict], hop: int) -> tuple[dict, dict]:
    lab = {id(it): frame_labels(it, hop) for it in train + test}
    vocab = _vocab(p for it in train for p in lab[id(it)] if p is not None)
    if len(vocab) < 2:
        with_phonemes = sum(1 for it in train if it.get("phonemes"))
        raise TaskSkipped("no_timings", f"no phoneme timings in the training utterances ({with_phonemes} of "
                                        f"{len(train)} have phonemes, e.g. from G2P, but none has timings); "
                                        "the frame-level probe runs only where timings exist")

    def flat(items):
        xs, ys = [], []
        for it in items:
            keep = np.array([p in vocab for p in lab[id(it)]]) & it["mask"]
            xs.append(it["x"][keep])
            ys += [vocab[p] for p in lab[id(it)][keep]]
        return np.concatenate(xs), np.array(ys, np.int32)

    (xs, ys), (xt, yt) = flat(train), flat(test)
    if not len(yt):
        raise TaskSkipped("no_timings", "no phoneme timings in the test utterances")
    return (dict(train_x=xs, train_y=ys, test_x=xt, test_y=yt, num_classes=len(vocab)),
            {"classes": len(vocab), "train_frames": len(ys), "test_frames": len(yt)})


def _ctc_inputs(task: dict, train: list[dict], test: list[dict]) -> tuple[dict, dict]:
    label = task["label"]
    tr = [it for it in train if tokens_of(it, label)]
    te = [it for it in test if tokens_of(it, label)]
    if not tr or not te:
        raise TaskSkipped("no_labels", f"no {label!r} transcriptions (train {len(tr)}, test {len(te)}); "
                                       "folder sources need transcripts for G2P")
    if all(len(it["x"]) > task["max_train_frames"] for it in tr):
        raise TaskSkipped("no_data", f"all {len(tr)} training utterances are longer than max_train_frames="
                                     f"{task['max_train_frames']} (understanding.tasks.<name>.max_train_frames)")
    vocab = _vocab(tok for it in tr + te for tok in tokens_of(it, label))
    kwargs = dict(train_x=[it["x"] for it in tr], train_mask=[it["mask"] for it in tr],
                  test_x=[it["x"] for it in te], test_mask=[it["mask"] for it in te],
                  train_labels=[[vocab[t] for t in tokens_of(it, label)] for it in tr],
                  test_labels=[[vocab[t] for t in tokens_of(it, label)] for it in te],
                  num_tokens=len(vocab), context=task["context"], max_train_frames=task["max_train_frames"])
    sources = sorted({it.get("phonemes_from", "source") for it in tr + te})
    return kwargs, {"tokens": len(vocab), "train_items": len(tr), "test_items": len(te), "label_from": sources}


def probe_inputs(task: dict, train: list[dict], test: list[dict], hop: int = LATENT_HOP) -> tuple[dict, dict]:
    """(kwargs for the task's probe function, info) from feature items; raises TaskSkipped."""
    if not train or not test:
        raise TaskSkipped("no_data", f"no utterances (train {len(train)}, test {len(test)})")
    kind = task["kind"]
    if kind == "utterance":
        kwargs, info = _utterance_inputs(task["label"], train, test)
    elif kind == "frame":
        kwargs, info = _frame_inputs(train, test, hop)
    else:
        kwargs, info = _ctc_inputs(task, train, test)
    kwargs["layered"] = train[0]["x"].ndim == 3
    return kwargs, info


PROBES = {"frame": probes.train_frame_probe, "utterance": probes.train_frame_probe,  # on pooled vectors
          "ctc": probes.train_ctc_probe}


def run_task(name: str, task: dict, train: list[dict], test: list[dict], *, seeds=(0, 1, 2),
             hop: int = LATENT_HOP) -> dict:
    """Run task `name` (settings `task`) on feature items: {"task", "metric", "info", "heads": {head:
    over_seeds result with "value_mean"/"value_std" = the task metric}} or a named skip."""
    try:
        kwargs, info = probe_inputs(task, train, test, hop)
    except TaskSkipped as e:
        return skipped(name, task, e.code, str(e))
    key = "error_rate" if task["kind"] == "ctc" else "accuracy"
    out = {"task": name, "metric": task["metric"], "info": info, "heads": {}}
    for head in task["heads"]:
        res = probes.over_seeds(PROBES[task["kind"]], seeds, head=head, steps=task["steps"],
                                batch_size=task["batch_size"], lr=task["lr"], **kwargs)
        res["value_mean"], res["value_std"] = res["mean"][key], res["std"][key]
        if kwargs["layered"]:
            res["layer_weights_mean"] = np.mean([r["layer_weights"] for r in res["runs"]], axis=0).tolist()
        out["heads"][head] = res
    return out
