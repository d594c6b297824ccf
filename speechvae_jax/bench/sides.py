"""Two frameworks timed alternately, each in its own process.

One process holding both the PyTorch and the JAX build of the paper model ran both slower than each
alone (generator step: PyTorch 8.2-9.4 s against 6.9 s, JAX 8.5-10.8 s against 5.4-6.3 s on the
2-core test machine; docs/performance.md, 2026-12-06), so each side lives in a spawned
worker: it builds its parts, calls each once (JAX compiles there; that call's time is reported), then
times whichever part the parent names. The parent names every part to PyTorch and then to JAX within
each repeat, so a drift in the machine's load hits both sides alike, and reports medians.

Even so, the JAX generator step took 5.4-5.7 s back to back but 7.9-8.4 s
when each call followed a PyTorch step in the other process (PyTorch's own step barely moved), so
the order is a choice: `grouped` runs each part's repeats back to back per side, as a user's
training loop does. Both sides' training steps also run slower for their first few calls after the
first (the paper generator step: PyTorch 6.8, 4.9, then about 4.0 s; JAX 7.0, then about 3.2 s;
docs/performance.md), so `warmup` untimed calls precede the timed ones, on both sides alike.

A builder is a "module:function" path; the function takes the keyword arguments given to `alternate`
and returns ({part name: (fn, input)}, info dict); both sides must name the same parts.
"""
from __future__ import annotations

import importlib
import multiprocessing
import time

import numpy as np


def timed(fn, *args) -> float:
    """Seconds one call of fn(*args) takes (fn must block until its result is ready)."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _serve(side: str, builder: str, kwargs: dict, conn) -> None:
    module, function = builder.split(":")
    parts, info = getattr(importlib.import_module(module), function)(**kwargs)
    first = {}
    for name, (fn, x) in parts.items():
        first[name] = timed(fn, x)
        print(f"  [{side}] {name}: first call {first[name]:.1f} s", flush=True)
    conn.send((first, info))
    while (name := conn.recv()) is not None:
        fn, x = parts[name]
        conn.send(timed(fn, x))


def alternate(builders: dict[str, str], kwargs: dict, repeats: int, grouped: bool = False, warmup: int = 0):
    """builders {side: "module:function"} -> ({part: {side: median s}}, {side: {part: first-call s}},
    {side: info}). The workers start one after the other, so each side's first calls run alone. With
    `grouped`, each part's repeats run back to back on one side, then on the other (see the module
    docstring for why both orders are offered). `warmup` untimed calls of a part precede its timed
    ones on each side: just before them when grouped, else as untimed rounds before the timed ones."""
    ctx = multiprocessing.get_context("spawn")
    conns, procs, first, info = {}, [], {}, {}
    try:
        for side, builder in builders.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(side, builder, kwargs, child), daemon=True)
            proc.start()
            child.close()  # so that a worker's death reaches recv() as EOFError
            procs.append(proc)
            try:
                first[side], info[side] = parent.recv()
            except EOFError:
                raise RuntimeError(f"the {side} side ({builder}) failed while building; "
                                   "its traceback is above") from None
            conns[side] = parent
        names = [list(f) for f in first.values()]
        if any(n != names[0] for n in names):
            raise ValueError(f"the sides name different parts: {dict(zip(builders, names))}")
        times = {name: {side: [] for side in builders} for name in names[0]}
        if grouped:
            schedule = [(name, side, i >= warmup) for name in names[0] for side in conns
                        for i in range(warmup + repeats)]
        else:
            schedule = [(name, side, i >= warmup) for i in range(warmup + repeats) for name in names[0]
                        for side in conns]
        for name, side, timed_call in schedule:
            conns[side].send(name)
            seconds = conns[side].recv()
            if timed_call:
                times[name][side].append(seconds)
    finally:
        for conn in conns.values():
            try:
                conn.send(None)
            except OSError:  # that worker has died already
                pass
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.terminate()
    medians = {name: {side: float(np.median(t)) for side, t in d.items()} for name, d in times.items()}
    return medians, first, info
