"""A toy trainer for the engine's tests: linear regression on seeded Grain batches, fast to compile.

The engine sees it like any trainer (a Task with init, one update kind, data, an evaluator); a test
can make it diverge (`lr`), slow to compile (`unroll`) or act at a chosen step through its evaluator
(`FAULTS[step]`, a callable run inside the evaluation of that step).
"""
from __future__ import annotations

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from speechvae_jax.engine import evaluators
from speechvae_jax.engine import update as update_lib
from speechvae_jax.engine.loop import default_mesh_config, default_train_config
from speechvae_jax.engine.task import Task, Update

DIM = 16
TRUE_W = np.linspace(-1.0, 1.0, DIM).astype(np.float32)
FAULTS: dict = {}  # step -> callable, run by the evaluator at that step (tests clear it)


def toy_config(num_steps: int = 6, **train) -> ConfigDict:
    c = ConfigDict()
    c.train = default_train_config()
    c.train.update(dict(num_steps=num_steps, batch_size=8, log_every=1, checkpoint_every=2, keep_checkpoints=2,
                        best_metric="val/mse"))
    c.train.update(train)
    c.toy = ConfigDict({"lr": 0.05, "unroll": 0, "pad": 0})
    c.evals = ConfigDict({"val": {"type": "toy_mse", "every": 2}})
    c.mesh = default_mesh_config()
    return c


class _Rows:
    """Grain random-access source of (x [DIM], y []) rows (picklable)."""

    def __len__(self):
        return 1000

    def __getitem__(self, i):
        x = np.random.default_rng(int(i)).standard_normal(DIM).astype(np.float32)
        return {"x": x, "y": np.float32(x @ TRUE_W)}


def _stack(items):
    return {k: np.stack([it[k] for it in items]) for k in items[0]}


def dataset(batch_size: int, seed: int, process_index: int, process_count: int):
    ds = grain.MapDataset.source(_Rows())[process_index::process_count].shuffle(seed=seed).repeat(None)
    return ds.to_iter_dataset().batch(batch_size // process_count, drop_remainder=True, batch_fn=_stack)


@evaluators.register("toy_mse")
def toy_mse(context):
    xs = np.random.default_rng(99).standard_normal((64, DIM)).astype(np.float32)
    ys = xs @ TRUE_W

    def evaluate(state):
        step = int(jax.device_get(state["step"]))
        if step in FAULTS:
            FAULTS.pop(step)()
        w = np.asarray(jax.device_get(state["w"]))
        return {"mse": float(np.mean((xs @ w[:DIM] - ys) ** 2))}
    return evaluate


def make_task(config: ConfigDict, mesh) -> Task:
    tx = optax.sgd(config.toy.lr)
    unroll, pad = int(config.toy.unroll), int(config.toy.pad)

    def init(rng):
        # the padding is never read by the loss: random bytes that make checkpoints big and incompressible
        w = jnp.concatenate([jnp.zeros((DIM,)), jax.random.normal(rng, (pad,))]).astype(jnp.float32)
        return {**update_lib.base_state(rng), "w": w, "opt_state": tx.init(w)}

    def grads(state, batch, frozen):
        def loss_fn(w):
            pred = batch["x"] @ w[:DIM]
            for i in range(unroll):  # a long chain of small ops: slow to compile, same value
                pred = pred + jnp.sin(pred * 1e-30 + i) * 0.0
            return jnp.mean((pred - batch["y"]) ** 2)
        loss, g = jax.value_and_grad(loss_fn)(state["w"])
        return (loss, g), {"loss": loss}

    def apply(state, out, metrics):
        loss, g = out
        w, opt_state, ok = update_lib.guarded_update(tx, state["w"], state["opt_state"], g, loss)
        return {**state, "w": w, "opt_state": opt_state, **update_lib.count_updates(state, [ok])}, metrics

    return Task(name="toy", init=init, updates={"sgd": Update(grads, apply)}, schedule=lambda step: "sgd",
                dataset=lambda pi, pc: dataset(int(config.train.batch_size), int(config.train.seed), pi, pc),
                batch_keys=("x", "y"), frozen_sections=("toy",),
                evaluators=evaluators.build(config.evals, None), best_metric=config.train.best_metric or None,
                shown=("loss",))
