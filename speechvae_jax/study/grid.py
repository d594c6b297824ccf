"""The variant grid of a study: which runs it holds and the full run config of each.

A study config (configs/study_tiny.py) names a base run config file, the alignment schemes and the
weightings (every scheme runs with every weighting, so the loss is never confounded with how it is
weighted), the hyper-weight of each weighting, a hyper-weight sweep of one (scheme, weighting), the
neighbours' recipes, and a baseline without alignment. `plan(study)` lists the runs; `run_config`
builds each one's ConfigDict from the base file exactly as `speechvae train --config BASE:VARIANT`
would, then applies the study's overrides; `tts_config` builds a run's TTS config the same way from
the study's `tts` section (studies that score generation).
"""
from __future__ import annotations

import dataclasses

from ml_collections import ConfigDict

from speechvae_jax.presets.alignment import RECIPES, SCHEMES, WEIGHTINGS
from speechvae_jax.presets.run import load_config_file

ROLES = ("baseline", "grid", "sweep", "recipe")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of the study: its folder name, role, variant and hyper-weight (None = the variant's)."""
    name: str
    role: str
    variant: str
    scheme: str
    weighting: str
    hyper_weight: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _hw_name(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def plan(study: ConfigDict) -> list[RunSpec]:
    """The runs of the study, in training order: baseline, grid, extra sweep points, recipes."""
    runs: list[RunSpec] = []
    if study.baseline:
        runs.append(RunSpec("none", "baseline", "none", "none", "fixed"))
    for scheme in study.schemes:
        if scheme not in SCHEMES or scheme == "none":
            raise ValueError(f"study.schemes: {scheme!r} is not an alignment scheme ({', '.join(SCHEMES[:-1])})")
        for weighting in study.weightings:
            if weighting not in WEIGHTINGS:
                raise ValueError(f"study.weightings: {weighting!r} is not one of {WEIGHTINGS}")
            runs.append(RunSpec(f"{scheme}-{weighting}", "grid", f"{scheme}+{weighting}", scheme, weighting,
                                float(study.hyper_weights[weighting])))
    sweep = study.get("sweep")
    if sweep and sweep.hyper_weights:
        scheme, weighting = sweep.scheme, sweep.weighting
        taken = {(r.scheme, r.weighting, r.hyper_weight) for r in runs}
        for hw in sweep.hyper_weights:
            if (scheme, weighting, float(hw)) not in taken:
                runs.append(RunSpec(f"{scheme}-{weighting}-hw{_hw_name(hw)}", "sweep", f"{scheme}+{weighting}",
                                    scheme, weighting, float(hw)))
    for recipe in study.get("recipes", ()):
        if recipe not in RECIPES:
            raise ValueError(f"study.recipes: {recipe!r} is not one of {RECIPES}")
        runs.append(RunSpec(f"recipe-{recipe}", "recipe", recipe, "", ""))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"study: run names repeat: {names}")
    return runs


def sweep_runs(study: ConfigDict, runs: list[RunSpec]) -> list[RunSpec]:
    """The runs on the hyper-weight sweep (grid point included), by increasing hyper-weight."""
    sweep = study.get("sweep")
    if not sweep:
        return []
    on = [r for r in runs if r.scheme == sweep.scheme and r.weighting == sweep.weighting
          and r.hyper_weight in {float(h) for h in sweep.hyper_weights}]
    return sorted(on, key=lambda r: r.hyper_weight)


def _apply(node: ConfigDict, overrides: ConfigDict, path: str) -> None:
    """Recursively set the keys of `overrides` on `node` (keys must exist, as on the command line);
    `path` names the overrides' section in errors ("study.run.")."""
    for key, value in overrides.items():
        where = f"{path}{key}"
        if key not in node:
            raise ValueError(f"{where}: no such key in the run config")
        if isinstance(value, ConfigDict):
            _apply(node[key], value, where + ".")
        else:
            node[key] = value


def run_config(study: ConfigDict, spec: RunSpec) -> ConfigDict:
    """The full run config of `spec`: the base file's get_config(variant), the study's `run`
    overrides, then the spec's hyper-weight and the study's distance-matrix pooling (grid and sweep
    runs; a recipe keeps its own alignment section)."""
    config = load_config_file(study.base, spec.variant)
    if "alignment" in study.run:
        raise ValueError("study.run must not set alignment keys: use schemes, weightings, hyper_weights, "
                         "sweep and pooling, which the study records")
    with config.unlocked():
        _apply(config, study.run, "study.run.")
        if spec.role in ("grid", "sweep"):
            config.alignment.hyper_weight = float(spec.hyper_weight)
            config.alignment.pooling = study.pooling.pooling
            config.alignment.pool_items = study.pooling.get("pool_items")
    return config


def tts_config(study: ConfigDict, latents: str) -> ConfigDict:
    """The config of a run's TTS (studies that score generation): the file `study.tts.base`'s
    get_config(), the study's `tts.run` overrides, trained on the exports under `latents`."""
    config = load_config_file(study.tts.base, "")
    with config.unlocked():
        _apply(config, study.tts.run, "study.tts.run.")
        config.data.latents = latents
    return config

