"""Work shared by the processes of a multi-host job outside a jitted step: barriers and small results
gathered through a shared folder (the run folder every process sees). With one process both are trivial.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
from jax.experimental import multihost_utils

from speechvae_jax import fileio


def sync(what: str) -> None:
    """Wait until every process reaches this point (`what` names it in errors); no-op on one process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(what)


def share(items: list, process_index: int | None = None, process_count: int | None = None) -> list:
    """This process's items of a list every process holds: items p, p + P, ..."""
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    return items[pi::pc]


def gather_json(folder: str, name: str, value: Any) -> list:
    """Every process's `value` (JSON-serialisable), in process order, on every process; exchanged as
    files `folder/.gather/<name>-<p>.json` (removed afterwards)."""
    pc, pi = jax.process_count(), jax.process_index()
    if pc == 1:
        return [json.loads(fileio.to_json(value))]
    tmp = os.path.join(folder, ".gather")
    os.makedirs(tmp, exist_ok=True)
    paths = [os.path.join(tmp, f"{name}-{p}.json") for p in range(pc)]
    fileio.atomic_write_text(paths[pi], fileio.to_json(value))
    sync(f"gather {name}: written")
    values = []
    for path in paths:
        with open(path) as f:
            values.append(json.load(f))
    sync(f"gather {name}: read")
    if pi == 0:
        for path in paths:
            os.remove(path)
    return values
