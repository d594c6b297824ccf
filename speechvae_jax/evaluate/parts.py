"""Parts of an evaluation: cached results, spread over processes, resumable.

A *part* is one unit of work (a chunk of reconstruction utterances, one probe task on one feature
set) stored as `{"key": ..., "result": ...}` in its own JSON file under `RUN/eval/parts/`. A part
whose stored key equals its key is read back; anything else is computed. With P processes
(`jax.process_count()`, hosts of a TPU slice), process p computes parts p, p + P, ...; all meet at a
barrier, then process 0 reads every part back (computing any it does not find, e.g. when the run
folder is not shared) and assembles the report. An interrupted evaluation resumes at the parts not
yet written, whatever the process count.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence

import jax
from absl import logging

from speechvae_jax import fileio


def cached(path: str, key: dict, compute: Callable[[], dict]) -> dict:
    """The `result` stored at path if its `key` equals key (after a JSON round trip), else
    compute(), store {key, result} atomically and return it."""
    key = json.loads(fileio.to_json(key))
    if os.path.exists(path):
        try:
            with open(path) as f:
                stored = json.load(f)
            if stored.get("key") == key:
                logging.info("reusing %s", path)
                return stored["result"]
        except (OSError, ValueError):
            logging.warning("unreadable cache %s; recomputing", path)
    result = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.atomic_write_json(path, {"key": key, "result": result}, sort_keys=True)
    return json.loads(fileio.to_json(result))


def is_cached(path: str, key: dict) -> bool:
    """Whether `cached(path, key, ...)` would read the result back."""
    try:
        with open(path) as f:
            return json.load(f).get("key") == json.loads(fileio.to_json(key))
    except (OSError, ValueError):
        return False


@dataclasses.dataclass
class Part:
    """One cached unit of work: `compute()` -> a JSON-serialisable dict."""
    name: str
    path: str
    key: dict
    compute: Callable[[], dict]


def barrier(name: str) -> None:
    """Wait for every process (no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def run_parts(parts: Sequence[Part], process_index: int = 0, process_count: int = 1) -> dict[str, dict] | None:
    """Compute this process's share of `parts` (index % process_count == process_index), wait for
    the others, and on process 0 return {name: result} of every part (None elsewhere)."""
    for i, part in enumerate(parts):
        if i % process_count == process_index:
            cached(part.path, part.key, part.compute)
    barrier("speechvae evaluate: parts written")
    if process_index != 0:
        return None
    return {part.name: cached(part.path, part.key, part.compute) for part in parts}
