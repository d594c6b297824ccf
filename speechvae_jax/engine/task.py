"""What a trainer hands the engine: `Task` (state init, updates, schedule, data, evaluators, samples).

A trainer module builds a Task from its config (`make_task(config, mesh) -> Task`) and calls
`engine.loop.run(config, workdir, make_task)`; the engine does the rest (mesh, sharded init or restore,
Orbax checkpoints with the Grain iterator state, resume checks, preemption, logging, the schedule of
evaluations, samples and checkpoints). State is a plain dict of arrays holding at least the keys of
`update.base_state` ("step", "rng", "skipped", "skipped_run").
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

State = dict[str, Any]
Batch = dict[str, Any]
Metrics = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Update:
    """One kind of update, as two pure functions the engine jits.

    grads(state, batch, frozen) -> (out, metrics): losses and gradients (nothing is changed);
    apply(state, out, metrics) -> (state, metrics): the optimiser step(s), EMA, step counter.
    On TPU/GPU the engine fuses them into one jitted function; on XLA:CPU it jits them separately by
    default, which compiles several times faster (`train.step_mode` overrides).
    """
    grads: Callable[[State, Batch, Any], tuple[Any, Metrics]]
    apply: Callable[[State, Any, Metrics], tuple[State, Metrics]]


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """`fn(state) -> {metric: float}` run every `every` steps (and at the end); the engine logs each
    metric as "<evaluator name>/<metric>" (e.g. "val/stft"). `fn` must not change the state."""
    fn: Callable[[State], dict[str, float]]
    every: int


@dataclasses.dataclass
class Task:
    """A trainer's contribution to a run.

    init: rng -> fresh state (pure; the engine jits it with the state's shardings as out_shardings).
    updates: the update kinds by name; schedule: step index -> the kind to run at that step.
    dataset: (process_index, process_count) -> a Grain IterDataset of this process's batches (dicts of
      numpy arrays with a leading per-process batch axis); its iterator state is checkpointed.
    batch_keys: the keys of a batch (all sharded over the batch axes).
    frozen: arrays every update reads but never changes (a teacher's params); replicated, not saved.
    frozen_sections: config sections a resumed run must not change (they decide shapes or data order).
    saved_before: {"section.key": value} the run was built with when its saved config lacks the key
      (the key is newer than the run); a resume compares that value with the current one.
    evaluators: by name (built from the config's `evals` section through `engine.evaluators`).
    best_metric: the logged metric (lower is better) that picks the best checkpoint, or None.
    samples: optional (state, step, logger) -> None writing listenable / viewable samples.
    throughput: (unit, amount per step) shown in the progress bar and logged, e.g. ("audio_s", 4.0).
    shown: metric names shown in the progress bar.
    """
    name: str
    init: Callable[[Any], State]
    updates: dict[str, Update]
    schedule: Callable[[int], str]
    dataset: Callable[[int, int], Any]
    batch_keys: Sequence[str]
    frozen: Any = None
    frozen_sections: Sequence[str] = ()
    saved_before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    evaluators: dict[str, Evaluator] = dataclasses.field(default_factory=dict)
    best_metric: str | None = None
    samples: Callable[[State, int, Any], None] | None = None
    sample_every: int = 0
    throughput: tuple[str, float] | None = None
    shown: Sequence[str] = ()
