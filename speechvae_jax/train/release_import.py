"""`speechvae convert release CKPT OUT`: a JMAS-VAE / Stable Audio Tools checkpoint -> a run folder.

Reads a Lightning `.ckpt` (its `state_dict`), a bare autoencoder state dict (`.pt` / `.ckpt` /
`.safetensors`) or a BigVGAN generator checkpoint (`{"generator": ...}`); finds the parts by their
keys (`models.torch_import.locate_parts`): online and EMA encoder / decoder, MPD and CQT
discriminators; maps every key onto the paper preset (`models.torch_import`), and writes a run folder
through the engine (`engine.rundir` config + `engine.checkpoint.write_checkpoint`) that `export`,
`decode`, `evaluate` and `train` (fine-tuning, fresh optimiser states) accept. The EMA weights
become the exported ones when present (else the online ones); absent discriminators keep a fresh
initialisation. Every key is accounted for in `OUT/import_report.json`: used, a known buffer, or
unexpected (named); a generator parameter the checkpoint lacks is an error naming it.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.engine import checkpoint, rundir
from speechvae_jax.models import torch_import
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train.state import Modules

REPORT_FILE = "import_report.json"


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Flat {key: float32 array} of a checkpoint file (trusted files only: `.ckpt` / `.pt` are unpickled)."""
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return {k: np.asarray(v, np.float32) for k, v in load_file(path).items()}
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("state_dict", "generator"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, a Lightning checkpoint or {{'generator': ...}}")
    return {k: v.detach().float().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def _part(state, prefix, pairs, template_tree, required: bool):
    template = {k: v.shape for k, v in flatten_dict(template_tree, sep="/").items()}
    params, used, missing = torch_import.convert(state, pairs, template, prefix)
    if missing and required:
        raise ValueError(f"checkpoint lacks {len(missing)} parameters under {prefix!r}, e.g. "
                         + ", ".join(missing[:5]))
    return unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in params.items()}), used, missing


def import_params(state: dict[str, np.ndarray], config: ConfigDict, abstract: dict) -> tuple[dict, dict]:
    """({"gen": ..., "ema": ..., "disc": ...} params, report) from a flat release state dict.

    `abstract` is the train state's shapes (`jax.eval_shape` of `Modules.init_state`). The report has
    `parts` (prefix per part found), `used`, `buffers`, `unexpected` (sorted keys) and counts by prefix.
    """
    parts = torch_import.locate_parts(state)
    for need in ("encoder", "decoder"):
        if need not in parts and f"ema_{need}" not in parts:
            raise ValueError(f"no {need} found in the checkpoint (parts found: {sorted(parts) or 'none'})")
    model = config.model
    gen_pairs = {"encoder": list(torch_import.encoder_pairs(model.encoder)),
                 "decoder": list(torch_import.decoder_pairs(model.decoder))}
    used: set[str] = set()
    out: dict[str, Any] = {}
    for kind in ("", "ema_"):
        vae = {}
        for name, pairs in gen_pairs.items():
            prefix = parts.get(kind + name, parts.get(("ema_" if not kind else "") + name))
            vae[name], u, _ = _part(state, prefix, pairs, abstract["gen"]["vae"][name], required=True)
            used |= u
        out["ema" if kind else "gen"] = vae
    disc = dict(abstract["disc"])  # absent families: the caller initialises them
    fresh = []
    for family, pairs in (("mpd", torch_import.mpd_pairs), ("cqt", torch_import.cqt_pairs)):
        names = [k for k in abstract["disc"] if k.startswith(family)]
        if family not in parts:
            fresh += names
            continue
        tree, u, _ = _part(state, parts[family], pairs(model.discriminators),
                                 {k: abstract["disc"][k] for k in names}, required=True)
        disc.update(tree)
        used |= u
    out["disc"] = disc
    buffers = sorted(k for k in state if k not in used and torch_import.is_buffer(k))
    bad = torch_import.check_buffers(state, buffers)
    if bad:
        raise ValueError(f"filters in the checkpoint differ from this model's: {bad[:3]}")
    unexpected = sorted(k for k in state if k not in used and not torch_import.is_buffer(k))
    report = {"parts": parts, "used": len(used), "buffers": len(buffers), "unexpected": unexpected,
              "unexpected_by_prefix": dict(Counter(k.split(".")[0] for k in unexpected)),
              "fresh_discriminators": fresh}
    return out, report


def convert_release(ckpt: str, out_dir: str, config: ConfigDict | None = None, teacher_dim: int | None = None,
                    seed: int = 0) -> dict:
    """Write the run folder `out_dir` from the release checkpoint `ckpt`; returns the import report.

    config: the run config (default `configs/paper.py:none`, the release model without a teacher).
    For a config with an alignment scheme pass the teacher's width; the projection head (never in
    the release's autoencoder) then starts fresh, like absent discriminators and both optimisers.
    """
    config = config or load_config_file("paper", "none")
    state_dict = load_state_dict(ckpt)
    m = Modules(config, teacher_dim=teacher_dim)
    crop = int(config.data.crop_samples)
    init = lambda r: m.init_state(r, crop)
    params, report = import_params(state_dict, config, jax.eval_shape(init, jax.random.PRNGKey(seed)))
    fresh = jax.jit(init)(jax.random.PRNGKey(seed))
    disc = {k: fresh["disc"][k] if k in report["fresh_discriminators"] else v for k, v in params["disc"].items()}
    state = {**fresh, "gen": {**fresh["gen"], "vae": params["gen"]}, "ema": {"vae": params["ema"]}, "disc": disc}
    os.makedirs(out_dir, exist_ok=True)
    rundir.RunDir(out_dir).write_config(config)
    checkpoint.write_checkpoint(out_dir, 0, state, meta={"imported_from": os.path.abspath(ckpt)})
    report["source"] = os.path.abspath(ckpt)
    fileio.atomic_write_text(os.path.join(out_dir, REPORT_FILE), json.dumps(report, indent=2) + "\n")
    return report
