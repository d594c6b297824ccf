"""The one train loop: `run(config, workdir, make_task) -> RunResult`.

Every trainer (the VAE, the teacher's pre-training, the latent TTS) supplies a `Task` (engine/task.py);
this module does the rest, the same way for all of them:

1. lock the run folder (one writer), build the mesh, ask the trainer for its Task;
2. abstract state (`jax.eval_shape`) -> shardings by the FSDP rule -> either a sharded init
   (`jax.jit(init, out_shardings=...)`) or a restore of the latest checkpoint into those shardings,
   with the Grain iterator state, after checking that the shape-defining config did not change;
3. step through global batches with each update kind compiled ahead of time (fused into one jitted
   function on TPU/GPU, or the grads / apply pair on CPU; the state is donated), interruptibly;
4. log every `train.log_every` steps, run the evaluators on their schedule, write samples, save
   checkpoints (the metrics go with them) and check that the last save succeeded;
5. stop cleanly on SIGTERM / Ctrl-C (save, then return with `stopped_by` set), on divergence
   (`Diverged`, nothing saved) or on a failed save (`checkpoint.SaveFailed`).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging
from ml_collections import ConfigDict
from tqdm import tqdm

from speechvae_jax import fileio
from speechvae_jax.engine import checkpoint, signals
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.engine.logging import RunLogger
from speechvae_jax.engine.rundir import RunDir
from speechvae_jax.engine.task import Task, Update

STEP_MODES = ("auto", "fused", "split")


class Diverged(RuntimeError):
    """Too many consecutive updates were skipped for non-finite losses or gradients."""


@dataclasses.dataclass
class RunResult:
    workdir: str
    step: int
    metrics: dict
    stopped_by: str | None = None  # "SIGTERM" / "SIGINT" when interrupted, None when finished
    state: Any = None              # the final state (device arrays), for trainers that export from it

    @property
    def exit_code(self) -> int:
        return signals.EXIT_CODES.get(self.stopped_by, 1) if self.stopped_by else 0


def default_train_config() -> ConfigDict:
    """The `train` keys the engine reads (trainers add their own)."""
    return ConfigDict({
        "num_steps": 1000, "batch_size": 16, "seed": 0,
        "log_every": 50, "checkpoint_every": 5000,
        "keep_checkpoints": 2,          # the latest N checkpoints ...
        "keep_best": 1,                 # ... plus the best K by best_metric (over restarts too)
        "best_metric": "",              # a logged metric, lower is better ("" = latest only)
        "max_consecutive_skips": 20,    # updates skipped for NaN/Inf in a row before the run aborts
        "step_mode": "auto",            # "fused" (one jitted step: TPU/GPU), "split" (grads + apply: CPU)
        "preemption_sync_every": 10,    # steps between the processes' agreement on stopping (multi-host)
    })


def default_mesh_config() -> ConfigDict:
    return ConfigDict({"shape": (-1, 1),        # (data, fsdp); -1 = all remaining devices
                       "fsdp_min_size": 2 ** 18})  # params with fewer elements stay replicated


def validate(config: ConfigDict) -> None:
    """Engine settings every run config must satisfy (ValueError naming the key)."""
    t = config.train
    n_dev, n_proc = jax.device_count(), jax.process_count()
    if t.batch_size % n_dev:
        raise ValueError(f"train.batch_size={t.batch_size} must be a multiple of the {n_dev} devices")
    if t.batch_size % n_proc:
        raise ValueError(f"train.batch_size={t.batch_size} must be a multiple of the {n_proc} processes")
    for key in ("num_steps", "log_every", "checkpoint_every"):
        if int(t[key]) <= 0:
            raise ValueError(f"train.{key} must be positive, got {t[key]}")
    if t.get("step_mode", "auto") not in STEP_MODES:
        raise ValueError(f"train.step_mode must be one of {STEP_MODES}, got {t.step_mode!r}")


def use_fused_step(config: ConfigDict) -> bool:
    """`train.step_mode`: "auto" fuses on TPU/GPU and splits on CPU (where the pair compiles faster)."""
    mode = config.train.get("step_mode", "auto")
    return jax.default_backend() != "cpu" if mode == "auto" else mode == "fused"


@dataclasses.dataclass(frozen=True)
class CompiledUpdate:
    """An update kind compiled ahead of time: `(fused_step,)` or `(grads, apply)` (`jax.stages.Compiled`,
    whose `memory_analysis()` / `cost_analysis()` the benchmarks read). Called like the step."""
    programs: tuple

    def __call__(self, state, batch, frozen):
        if len(self.programs) == 1:
            return self.programs[0](state, batch, frozen)
        grads, apply = self.programs
        return apply(state, *grads(state, batch, frozen))


def compile_update(update: Update, fused: bool, shardings: tuple, state, batch, frozen) -> CompiledUpdate:
    """Compile `update` for arguments like (state, batch, frozen) (arrays or ShapeDtypeStructs with
    shardings): one jitted step (fused), or the grads / apply pair whose gradient tree goes through
    memory between them (split); the state is donated. shardings = (state, batch, frozen, replicated)."""
    state_sh, batch_sh, frozen_sh, rep = shardings
    ins = (state_sh, batch_sh, frozen_sh)
    if fused:
        fn = jax.jit(lambda s, b, f: update.apply(s, *update.grads(s, b, f)), in_shardings=ins,
                     out_shardings=(state_sh, rep), donate_argnums=0)
        return CompiledUpdate((fn.lower(state, batch, frozen).compile(),))
    grads = jax.jit(update.grads, in_shardings=ins).lower(state, batch, frozen).compile()
    apply = jax.jit(update.apply, out_shardings=(state_sh, rep), donate_argnums=0)
    return CompiledUpdate((grads, apply.lower(state, *grads.out_info).compile()))


class _Steps:
    """The compiled update kinds of a task (compiled on first use, interruptibly)."""

    def __init__(self, task: Task, fused: bool, shardings: tuple, interrupts: signals.Interrupts):
        self.task, self.fused, self.interrupts = task, fused, interrupts
        self.shardings = shardings
        self.compiled: dict[str, Callable] = {}

    def get(self, kind: str, state, batch, frozen) -> Callable | None:
        """The compiled step of `kind`, or None when a signal arrived while compiling it (one process
        only: several processes must leave at the same step, so they act on a signal at the next
        agreed stop check instead)."""
        if kind not in self.compiled:
            t0 = time.time()
            work = lambda: compile_update(self.task.updates[kind], self.fused, self.shardings, state, batch, frozen)
            if jax.process_count() > 1:
                done, fn = True, work()
            else:
                done, fn = self.interrupts.wait_or_stop(work, f"compiling '{kind}'")
            if not done:
                return None
            logging.info("compiled the '%s' step in %.1f s (%s)", kind, time.time() - t0,
                         "fused" if self.fused else "grads + apply")
            mesh_lib.wait_for_processes(f"speechvae: compiled the '{kind}' step")
            self.compiled[kind] = fn
        return self.compiled[kind]


def _init_or_restore(task: Task, config: ConfigDict, mesh, ckpts: checkpoint.Checkpoints, data_iter):
    """(state, shardings, start step): a fresh sharded state, or the latest checkpoint's."""
    rng = jax.random.PRNGKey(int(config.train.seed))
    abstract = jax.eval_shape(task.init, rng)
    state_sh = mesh_lib.tree_shardings(abstract, mesh, int(config.mesh.get("fsdp_min_size", 2 ** 18)))
    latest = ckpts.latest_step()
    if latest is None:
        state = jax.jit(task.init, out_shardings=state_sh)(rng)
        return state, state_sh, 0
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sh)
    state, _ = ckpts.restore(latest, target, data_iter)
    return state, state_sh, int(latest)


def _host(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def run(config: ConfigDict, workdir: str, make_task: Callable[[ConfigDict, Any], Task]) -> RunResult:
    """Train (or resume) the run in `workdir` with the Task `make_task(config, mesh)` describes."""
    validate(config)
    pi = jax.process_index()
    if pi == 0:
        fileio.ensure_writable(workdir)
    rd = RunDir(workdir, pi)
    rd.lock()
    interrupts = signals.Interrupts(int(config.train.get("preemption_sync_every", 10)))
    ckpts = logger = None
    try:
        mesh = mesh_lib.make_mesh(tuple(config.mesh.shape))
        task = make_task(config, mesh)
        ckpts = checkpoint.Checkpoints(workdir, keep=int(config.train.keep_checkpoints),
                                       keep_best=int(config.train.get("keep_best", 1)),
                                       best_metric=task.best_metric)
        if ckpts.latest_step() is not None:
            rd.check_resume(config, task.frozen_sections, task.saved_before)
        rd.write_config(config)
        data_iter = iter(task.dataset(pi, jax.process_count()))
        state, state_sh, start = _init_or_restore(task, config, mesh, ckpts, data_iter)
        if start and pi == 0:
            print(f"resumed {rd} from step {start}", flush=True)
        logger = RunLogger(workdir, resume_step=start, enabled=pi == 0)
        rep = mesh_lib.replicated(mesh)
        frozen = None if task.frozen is None else jax.device_put(task.frozen, rep)
        frozen_sh = None if frozen is None else jax.tree.map(lambda _: rep, frozen)
        batch_sh = {k: mesh_lib.batch_sharding(mesh) for k in task.batch_keys}
        steps = _Steps(task, use_fused_step(config), (state_sh, batch_sh, frozen_sh, rep), interrupts)
        return _loop(task, config, rd, ckpts, logger, interrupts, steps, state, data_iter, frozen, mesh, start)
    finally:
        try:
            if ckpts is not None:
                ckpts.close()
        finally:
            if logger is not None:
                logger.close()
            interrupts.restore()
            rd.unlock()


def _loop(task: Task, config: ConfigDict, rd: RunDir, ckpts: checkpoint.Checkpoints, logger: RunLogger,
          interrupts: signals.Interrupts, steps: _Steps, state, data_iter, frozen, mesh, start: int) -> RunResult:
    t = config.train
    num_steps, primary = int(t.num_steps), jax.process_index() == 0
    max_skips = int(t.get("max_consecutive_skips", 20))
    last: dict = {}
    unit, per_step = task.throughput or ("items", float(t.batch_size))
    bar = tqdm(total=num_steps, initial=start, desc=task.name, unit="step", disable=not primary,
               dynamic_ncols=True)
    t_last, since = time.time(), 0
    step = start

    def evaluate(names=None) -> dict:
        out = {}
        for name, ev in task.evaluators.items():
            if names is None or name in names:
                out.update({f"{name}/{k}": float(v) for k, v in ev.fn(state).items()})
        return out

    def check_divergence() -> None:
        run_skips = int(jax.device_get(state["skipped_run"]))
        if run_skips >= max_skips:
            finite = {k: round(v, 5) for k, v in last.items() if k.startswith(("loss", "val")) and np.isfinite(v)}
            raise Diverged(f"step {step}: the last {run_skips} updates were skipped for non-finite losses or "
                           f"gradients (train.max_consecutive_skips={max_skips}); stopping without saving. "
                           f"Last finite losses: {finite or 'none'}. Checkpoints kept: {ckpts.steps() or 'none'}.")

    def save(metrics: dict, force: bool = False) -> None:
        check_divergence()
        if task.best_metric and task.best_metric not in metrics:
            metrics = {**metrics, **evaluate()}
        meta = {"step": step, "metrics": metrics, "skipped": int(jax.device_get(state["skipped"]))}
        ckpts.save(step, state, data_iter, meta, metrics=metrics, force=force)

    try:
        while step < num_steps:
            batch = mesh_lib.global_batch(next(data_iter), mesh)
            fn = steps.get(task.schedule(step), state, batch, frozen)
            if fn is None:  # interrupted while compiling: save only progress not saved yet
                if step > 0 and ckpts.latest_step() != step:
                    save({}, force=True)
                break
            state, metrics = fn(state, batch, frozen)
            step += 1
            since += 1
            bar.update(1)
            ckpts.check()
            if step % int(t.log_every) == 0 or step == num_steps:
                check_divergence()
                metrics = _host(metrics)
                now = time.time()
                rate = since / max(now - t_last, 1e-9)
                t_last, since = now, 0
                metrics.update({"perf/steps_per_sec": rate, f"perf/{unit}_per_sec": rate * per_step,
                                "perf/wall_time": now, "skipped_total": float(jax.device_get(state["skipped"]))})
                logger.scalars(step, metrics)
                last.update(metrics)
                bar.set_postfix({**{k.split("/")[-1]: f"{metrics[k]:.3f}" for k in task.shown if k in metrics},
                                 f"{unit}/s": f"{rate * per_step:.1f}"})
                rd.heartbeat()
            due = [n for n, ev in task.evaluators.items() if step % ev.every == 0 or step == num_steps]
            val = evaluate(due) if due else {}
            if val:
                logger.scalars(step, {**val, "perf/wall_time": time.time()})
                last.update(val)
            if task.samples and task.sample_every and (step % task.sample_every == 0 or step == num_steps):
                task.samples(state, step, logger)
            stop = interrupts.should_stop(step)
            if step % int(t.checkpoint_every) == 0 or step == num_steps or stop:
                save(val, force=stop)
            if stop:
                break
    finally:
        bar.close()
    if start == num_steps:  # nothing left to train: report the finished run's evaluations
        last.update(evaluate())
    ckpts.wait()
    stopped = interrupts.signal if step < num_steps else None
    skipped = int(jax.device_get(state["skipped"]))
    if skipped:
        logging.warning("%d update(s) were skipped because a loss or gradient was not finite", skipped)
    if primary:
        how = f"stopped by {stopped} at step {step}; run the same command to resume" if stopped else \
            f"finished at step {step}"
        print(f"{task.name}: {how}. Checkpoints: {ckpts.directory} (steps {ckpts.steps()}); metrics: "
              f"{rd.path / 'metrics.jsonl'}", flush=True)
    return RunResult(workdir=str(rd.path), step=step, metrics=last, stopped_by=stopped, state=state)
