"""Is a teacher a real SSL model? Frame-level phoneme probes on its layers versus MFCC and log-mel.

Uses the evaluation package's one probe implementation (`evaluate.understanding.run_task` with the
"phoneme_frame" protocol: linear head, same budget for every feature) on 40 Hz frame features of the
same utterances: MFCC (13 + delta + delta-delta, n_fft 1024, hop 400), log-mel (80 bins, as the
evaluation report) and the teacher's hidden states (50 -> 40 Hz linear, `teachers.features`).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from speechvae_jax.constants import LATENT_HOP
from speechvae_jax.evaluate import features, probes, understanding
from speechvae_jax.pretrain.labels import mfcc_features
from speechvae_jax.teachers.features import teacher_targets
from speechvae_jax.teachers.store import load_teacher


def mfcc_items(records: list[dict]) -> list[dict]:
    """MFCC feature items {"x" [T,39], "mask" [T], **labels} at 40 Hz, T = ceil(N / 400)."""
    items = []
    for rec in records:
        t = features.num_frames(rec["audio"].size)
        padded = np.pad(rec["audio"], (512, 512 + LATENT_HOP))  # centred 1024-sample windows
        x = mfcc_features(padded, window=1024, hop=LATENT_HOP)[:t]
        items.append({"x": x, "mask": np.ones(t, bool), **features.labels_of(rec)})
    return items


def teacher_layer_items(teacher, layers, records: list[dict]) -> dict[int, list[dict]]:
    """Feature items of several teacher layers (one forward pass per batch), 50 -> 40 Hz linear."""
    out = {layer: [] for layer in layers}
    for batch in features.padded_batches(records):
        audio, mask = jnp.asarray(batch["audio"]), jnp.asarray(batch["mask"])
        hidden = teacher.hidden_states(audio, mask)
        for layer in layers:
            s, frame_mask = teacher_targets(hidden, layer, audio.shape[1] // LATENT_HOP, mask, "linear",
                                            hop=teacher.hop, receptive_field=teacher.receptive_field,
                                            latent_hop=LATENT_HOP)
            s, frame_mask = np.asarray(s), np.asarray(frame_mask)
            for i, rec in enumerate(batch["records"]):
                t = features.num_frames(rec["audio"].size)
                out[layer].append({"x": s[i, :t], "mask": frame_mask[i, :t], **features.labels_of(rec)})
    return out


def phoneme_probe_figures(teacher_path: str, data_spec: str, layers=None, *, train_limit: int = 200,
                          test_limit: int = 100, seeds=(0, 1, 2)) -> dict:
    """Frame phoneme accuracy (test split, linear probe, mean/std over seeds) per feature.

    layers: teacher hidden-state indices to probe (default: all). Returns {"features": {name:
    {"accuracy_mean", "accuracy_std"}}, "info": probe data sizes, "teacher": identity}."""
    teacher = load_teacher(teacher_path)
    layers = list(range(teacher.config.num_hidden_layers + 1)) if layers is None else list(layers)
    train, _ = features.select_utterances(data_spec, "train", train_limit)
    test, _ = features.select_utterances(data_spec, "test", test_limit)
    sets = {"mfcc": (mfcc_items(train), mfcc_items(test)),
            "log_mel": (features.log_mel_items(train), features.log_mel_items(test))}
    tr_layers, te_layers = teacher_layer_items(teacher, layers, train), teacher_layer_items(teacher, layers, test)
    for layer in layers:
        sets[f"teacher_layer_{layer}"] = (tr_layers[layer], te_layers[layer])
    task = understanding.TASKS["phoneme_frame"]
    out, info = {}, None
    for name, (tr, te) in sets.items():
        kwargs, info = understanding.probe_inputs(task, tr, te)
        res = probes.over_seeds(probes.train_frame_probe, seeds, head="linear", steps=task["steps"],
                                batch_size=task["batch_size"], lr=task["lr"], **kwargs)
        out[name] = {"accuracy_mean": float(res["mean"]["accuracy"]),
                     "accuracy_std": float(res["std"]["accuracy"])}
    return {"features": out, "info": info, "teacher": teacher.identity, "data": data_spec,
            "train_utterances": len(train), "test_utterances": len(test), "seeds": list(seeds),
            "probe": {k: task[k] for k in ("steps", "batch_size", "lr")}}
