"""`speechvae study`: train, export and evaluate every run of the grid, then write the comparison.

    STUDY/plan.json             the runs (name, role, variant, hyper-weight) and the study config
    STUDY/runs/<name>/          each run's folder (config.json, checkpoints/, export/, eval/, and tts/
                                when the study scores generation: a TTS trained on the run's latents)
    STUDY/status/<name>.json    each stage's key, wall and CPU seconds (what the study did, and when)
    STUDY/compare/              compare.md, compare.json and the figures (`study.compare`)

Resumable at every level: a run (or its TTS) whose latest checkpoint reached train.num_steps is not
trained again (an interrupted one resumes from its checkpoint through the engine), an export or evaluation
whose recorded key (checkpoint step, settings) still matches and whose output exists is not redone,
and an interrupted export or evaluation resumes its own finished shards and parts. On a cluster
each run is one job (`commands` prints `speechvae study ... --only NAME`); `collect` compares the
finished runs.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable

import jax
from ml_collections import ConfigDict

from speechvae_jax import fileio
from speechvae_jax.engine.checkpoint import Checkpoints
from speechvae_jax.evaluate import protocol
from speechvae_jax.evaluate import report as eval_report
from speechvae_jax.export import writer
from speechvae_jax.generate import trainer as tts_trainer
from speechvae_jax.study import compare
from speechvae_jax.study.grid import RunSpec, plan, run_config, sweep_runs, tts_config
from speechvae_jax.train.task import train_and_evaluate

TTS_SPLITS = ("train", "valid", "test")   # the TTS trains on train / valid; generation reads test


class StudyStopped(RuntimeError):
    """A training run was stopped by a signal; the same command resumes the study."""

    def __init__(self, name: str, exit_code: int):
        super().__init__(f"study stopped while training {name}; run the same command to resume")
        self.exit_code = exit_code


def run_dir(workdir: str, name: str) -> str:
    return os.path.join(workdir, "runs", name)


def _status_path(workdir: str, name: str) -> str:
    return os.path.join(workdir, "status", f"{name}.json")


def read_status(workdir: str, name: str) -> dict:
    """{stage: {"key", "seconds", "finished", ("inputs")}} recorded for run `name` ({} when none)."""
    path = _status_path(workdir, name)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _record(workdir: str, name: str, stage: str, entry: dict | None) -> None:
    """Set (or, with None, drop) the status entry of `stage` of run `name`."""
    status = read_status(workdir, name)
    if entry is None:
        status.pop(stage, None)
    else:
        status[stage] = entry
    os.makedirs(os.path.dirname(_status_path(workdir, name)), exist_ok=True)
    fileio.atomic_write_json(_status_path(workdir, name), status, sort_keys=True)


def _latest_step(path: str) -> int | None:
    if not os.path.isdir(os.path.join(path, "checkpoints")):
        return None
    ckpts = Checkpoints(path, read_only=True)
    try:
        return ckpts.latest_step()
    finally:
        ckpts.close()


def _stage(workdir: str, name: str, stage: str, key: dict, output: str, fn: Callable[[], None],
           log: Callable[[str], None]) -> bool:
    """Run fn unless the recorded key of `stage` equals `key` and `output` exists; True when it ran."""
    key = json.loads(fileio.to_json(key))
    done = read_status(workdir, name).get(stage, {})
    if done.get("key") == key and os.path.exists(output):
        log(f"{name}: {stage} done before ({done.get('seconds', 0):.0f} s), kept")
        return False
    log(f"{name}: {stage} ...")
    t0, c0 = time.time(), time.process_time()
    fn()
    seconds, cpu = time.time() - t0, time.process_time() - c0
    _record(workdir, name, stage, {"key": key, "seconds": seconds, "cpu_seconds": cpu, "finished": time.time()})
    log(f"{name}: {stage} finished in {seconds:.0f} s ({cpu:.0f} CPU s)")
    return True


def _set_aside_if_stale(workdir: str, name: str, stage: str, path: str, inputs: dict, log) -> None:
    """Move `path` to `path.stale-<n>` when what it was trained on (the `inputs` recorded in the status,
    e.g. the VAE step whose latents a TTS learnt) is not `inputs` now, so that training starts afresh."""
    recorded = read_status(workdir, name).get(stage, {}).get("inputs")
    if recorded == inputs or not os.path.isdir(path):
        return
    n = 1
    while os.path.exists(f"{path}.stale-{n}"):
        n += 1
    os.rename(path, f"{path}.stale-{n}")
    log(f"{name}: {stage} was trained on {recorded or 'unrecorded inputs'}, now {inputs}: "
        f"moved to {path}.stale-{n}, training afresh")
    _record(workdir, name, stage, None)


def _train(workdir: str, name: str, stage: str, path: str, config: ConfigDict, train: Callable, what: str,
           log, inputs: dict | None = None) -> int:
    """Train (or resume) `config` in `path` with `train(config, path)` unless its latest checkpoint
    reached num_steps; the final step. `stage` ("train", "tts") names it in the study's status. With
    `inputs` (what the training reads, e.g. {"vae_step": 2000} for a TTS), a `path` trained on other
    inputs is set aside first (`_set_aside_if_stale`); they are recorded before training starts."""
    if inputs is not None:
        _set_aside_if_stale(workdir, name, stage, path, inputs, log)
    steps = int(config.train.num_steps)
    if (_latest_step(path) or 0) >= steps:
        log(f"{name}: {stage} done before ({steps} steps), kept")
        return steps
    log(f"{name}: {stage} {steps} steps ({what})")
    before = read_status(workdir, name).get(stage, {})
    if inputs is not None:
        _record(workdir, name, stage, {**before, "inputs": inputs})
    t0, c0 = time.time(), time.process_time()
    config.lock()
    result = train(config, path)
    jax.clear_caches()  # the next run compiles its own step; drop this one's executables
    _record(workdir, name, stage, {
        "key": {"num_steps": steps}, "seconds": before.get("seconds", 0.0) + time.time() - t0,
        "cpu_seconds": before.get("cpu_seconds", 0.0) + time.process_time() - c0,
        "finished": time.time(), "stopped_by": result.stopped_by,
        **({"inputs": inputs} if inputs is not None else {})})
    if result.stopped_by:
        raise StudyStopped(name, result.exit_code)
    return result.step


def eval_config(study: ConfigDict, spec: RunSpec) -> ConfigDict:
    """The evaluation protocol of a run (`evaluate.protocol.default_eval_config`) shrunk by the study's
    `eval.sizes`: {"recon_utterances": n, "tasks": names kept, "probe_utterances": {split: cap}}. Only
    the reference run computes the teacher and log-mel rows (the same for every run, so once)."""
    cfg = protocol.default_eval_config()
    sizes = study.eval.sizes.to_dict()
    unknown = sorted(set(sizes) - {"recon_utterances", "tasks", "probe_utterances"})
    if unknown:
        raise ValueError(f"study eval.sizes: unknown keys {unknown}; use recon_utterances, tasks, probe_utterances")
    if "recon_utterances" in sizes:
        cfg.reconstruction.utterances = int(sizes["recon_utterances"])
    tasks = cfg.understanding.tasks.to_dict()
    keep = list(sizes.get("tasks", tasks))
    missing = [t for t in keep if t not in tasks]
    if missing:
        raise ValueError(f"study eval.sizes.tasks: unknown probe tasks {missing}; one of {sorted(tasks)}")
    caps = sizes.get("probe_utterances", {})
    for t in tasks.values():
        t["train_utterances"] = caps.get(t["train"], t["train_utterances"])
        t["test_utterances"] = caps.get(t["test"], t["test_utterances"])
    cfg.understanding.tasks = ConfigDict({name: tasks[name] for name in keep})
    reference = spec.name == reference_run(study)
    cfg.understanding.feature_sets = ("latent", "teacher", "log_mel") if reference else ("latent",)
    protocol.check_eval_config(cfg)
    return cfg


def reference_run(study: ConfigDict) -> str:
    return study.eval.reference_run or plan(study)[0].name


STAGES = ("train", "export", "tts", "evaluate")


def _scores_generation(study: ConfigDict) -> bool:
    """Whether the study scores the generation axis; then every run needs a TTS on its latents."""
    if "generation" not in study.eval.axes:
        return False
    missing = [s for s in TTS_SPLITS if s not in study.export.splits]
    if missing:
        raise ValueError(f"study.eval.axes has generation: study.export.splits must hold {', '.join(TTS_SPLITS)} "
                         f"(the TTS trains on train / valid, the axis reads test); missing {', '.join(missing)}")
    if "tts" not in study:
        raise ValueError("study.eval.axes has generation: the study needs a `tts` section "
                         "(base: a TTS config file, run: its overrides; configs/study_tiny.py:three_axes)")
    return True


def run_one(study: ConfigDict, workdir: str, spec: RunSpec, log: Callable[[str], None] = print,
            stages: tuple[str, ...] = STAGES) -> None:
    """Train, export, train the TTS (studies that score generation) and evaluate one run of the study
    (each stage skipped when already done). `stages` picks some of them (e.g. train on an accelerator
    slice, evaluate elsewhere); the later stages need the training finished."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown study stages {unknown}; choose from {STAGES}")
    generation = _scores_generation(study)
    config = run_config(study, spec)
    path = run_dir(workdir, spec.name)
    if "train" in stages:
        hw = config.alignment.hyper_weight if spec.scheme != "none" else "-"
        step = _train(workdir, spec.name, "train", path, config, train_and_evaluate,
                      f"{spec.variant}, hyper-weight {hw}", log)
    else:
        step = _latest_step(path) or 0
        if step < int(config.train.num_steps):
            raise ValueError(f"{spec.name} is trained to step {step} of {config.train.num_steps}: train it first")
    data = study.eval.data or config.data.source
    for split in (study.export.splits if "export" in stages else ()):
        out = os.path.join(path, "export", split)
        key = {"step": step, "data": data, "split": split, "mode": study.export.mode, "dtype": study.export.dtype}
        _stage(workdir, spec.name, f"export_{split}", key, os.path.join(out, "manifest.json"),
               lambda: writer.export_latents(path, data, out, split=split, mode=study.export.mode,
                                             dtype=study.export.dtype), log)
    eval_cfg = eval_config(study, spec)
    axes = list(study.eval.axes)
    key = {"step": step, "data": data, "axes": axes, "eval_config": eval_cfg.to_dict()}
    if generation:
        tts = tts_config(study, os.path.join(path, "export"))
        key["tts_steps"] = int(tts.train.num_steps)
        learnt = {"vae_step": step}   # the latents the TTS learns: the exports of this VAE step
        if "tts" in stages:
            _train(workdir, spec.name, "tts", os.path.join(path, "tts"), tts, tts_trainer.train,
                   f"TTS {study.tts.base}", log, inputs=learnt)
        elif "evaluate" in stages and (read_status(workdir, spec.name).get("tts", {}).get("inputs") != learnt
                                       or (_latest_step(os.path.join(path, "tts")) or 0) < key["tts_steps"]):
            raise ValueError(f"{spec.name}: no TTS trained {key['tts_steps']} steps on the latents of VAE step "
                             f"{step}: run the tts stage first")
    if "evaluate" in stages:
        _stage(workdir, spec.name, "evaluate", key, os.path.join(path, "eval", "report.json"),
               lambda: eval_report.evaluate(path, eval_cfg, axes=axes, data=data), log)


def write_plan(study: ConfigDict, workdir: str) -> list[RunSpec]:
    runs = plan(study)
    os.makedirs(workdir, exist_ok=True)
    fileio.atomic_write_json(os.path.join(workdir, "plan.json"),
                             {"runs": [r.to_dict() for r in runs], "study": study.to_dict()}, sort_keys=True)
    return runs


def select(runs: list[RunSpec], only: list[str] | None) -> list[RunSpec]:
    """The runs named in `only`, in that order (the order they are trained in), or all of them."""
    if not only:
        return runs
    by_name = {r.name: r for r in runs}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise ValueError(f"--only {','.join(unknown)}: not runs of this study ({', '.join(by_name)})")
    return [by_name[n] for n in dict.fromkeys(only)]


def run_study(study: ConfigDict, workdir: str, only: list[str] | None = None,
              log: Callable[[str], None] = print, stages: tuple[str, ...] = STAGES) -> dict | None:
    """Run the study's runs (or those named in `only`) through `stages`; when all runs and stages
    were asked for, also write the comparison (returned). Raises StudyStopped when a training run
    was interrupted by a signal."""
    fileio.require_local(workdir, "study")
    runs = write_plan(study, workdir)
    chosen = select(runs, only)
    t0 = time.time()
    for i, spec in enumerate(chosen):
        log(f"[{i + 1}/{len(chosen)}] {spec.name}")
        run_one(study, workdir, spec, log, stages)
    log(f"study: {len(chosen)} run(s) handled in {time.time() - t0:.0f} s")
    everything = {r.name for r in chosen} == {r.name for r in runs} and tuple(stages) == STAGES
    return collect(study, workdir, log=log) if everything else None


def commands(config_spec: str, overrides: list[tuple[str, str]], workdir: str, runs: list[RunSpec],
             stages: tuple[str, ...] = STAGES) -> list[str]:
    """One `speechvae study ... --only NAME` command line per run (for a job array or a scheduler)."""
    extra = " ".join(shlex.quote(f"--config.{k}={v}") for k, v in overrides)
    base = f"speechvae study --config {shlex.quote(config_spec)} --workdir {shlex.quote(workdir)}"
    flag = "" if tuple(stages) == STAGES else f" --stages {','.join(stages)}"
    return [f"{base} --only {r.name}{flag}" + (f" {extra}" if extra else "") for r in runs]


def collect(study: ConfigDict, workdir: str, allow_missing: bool = False,
            log: Callable[[str], None] = print) -> dict:
    """Compare the study's evaluated runs into STUDY/compare (a run without a report is an error
    unless allow_missing, then it is listed as missing)."""
    runs = plan(study)
    ready = [r for r in runs if os.path.exists(os.path.join(run_dir(workdir, r.name), "eval", "report.json"))]
    missing = [r.name for r in runs if r not in ready]
    if missing and not allow_missing:
        raise ValueError(f"runs not evaluated yet: {', '.join(missing)} (run them, or --collect --allow-missing)")
    sweep = [r.name for r in sweep_runs(study, ready)]
    result = compare.compare([run_dir(workdir, r.name) for r in ready], os.path.join(workdir, "compare"),
                             names=[r.name for r in ready], score_config=study.score, sweep=sweep,
                             roles={r.name: r.role for r in ready},
                             times={r.name: read_status(workdir, r.name) for r in ready})
    result["missing"] = missing
    log(f"comparison of {len(ready)} run(s) written to {os.path.join(workdir, 'compare')}")
    return result
