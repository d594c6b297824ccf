"""Periodic evaluators, registered by name and chosen in the config (as big_vision does).

A trainer module registers factories at import:

    @evaluators.register("vae_reconstruction")
    def reconstruction(context, *, batches: int = 2) -> Callable[[state], dict[str, float]]: ...

and a config names what to run in its `evals` section, one entry per evaluator instance:

    config.evals = {"val": {"type": "vae_reconstruction", "every": 250, "batches": 2}}

`build(config.evals, context)` looks each type up, passes the remaining keys as keyword arguments
and returns {name: task.Evaluator}. `context` is whatever the trainer's factories need (its modules,
mesh, shardings, config); the engine never looks inside it.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from ml_collections import ConfigDict

from speechvae_jax.engine.task import Evaluator

Factory = Callable[..., Callable[[dict], dict]]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make `factory(context, **kwargs) -> fn(state) -> metrics` available as `name`."""
    def deco(factory: Factory) -> Factory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"evaluator type {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory
    return deco


def registered() -> list[str]:
    return sorted(_REGISTRY)


def build(evals: ConfigDict | dict, context: Any) -> dict[str, Evaluator]:
    """{name: Evaluator} for every entry of a config's `evals` section (see the module docstring)."""
    out = {}
    for name, spec in dict(evals).items():
        spec = dict(spec)
        kind = spec.pop("type", None)
        every = int(spec.pop("every", 0))
        if kind not in _REGISTRY:
            close = difflib.get_close_matches(str(kind), _REGISTRY, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"config.evals.{name}.type = {kind!r} is not a registered evaluator "
                             f"({', '.join(registered())}){hint}")
        if every <= 0:
            raise ValueError(f"config.evals.{name}.every must be a positive number of steps, got {every}")
        factory = _REGISTRY[kind]
        params = inspect.signature(factory).parameters
        unknown = [k for k in spec if k not in params]
        if unknown:
            raise ValueError(f"config.evals.{name}: {kind!r} takes no option(s) {unknown}; it takes "
                             f"{[p for p in params if p != 'context']}")
        out[name] = Evaluator(fn=factory(context, **spec), every=every)
    return out
