"""Checkpoints of a run (Orbax `CheckpointManager`, asynchronous), local or on gs://.

A checkpoint step holds three items: `state` (the trainer's state dict, sharded arrays), `data_iter`
(the Grain iterator state, one JSON file per process, so a resumed run continues the exact data order)
and `meta` (step, metrics, skip count). Frozen inputs (a teacher) are never saved.

Retention survives restarts: the metrics of every save are stored with it (Orbax's `metrics` item), so
"the last `keep` plus the best `keep_best` by `best_metric` (lower is better)" is decided over all
checkpoints on disk, whichever process wrote them; `RUN/best_checkpoint.json` names the best step.
A save that fails (full disk, lost permissions) raises `SaveFailed` at the next `check()`: one line
naming the step, the folder and the checkpoints kept; its temporary folder is removed.
"""
from __future__ import annotations

import hashlib
import shutil
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp

from speechvae_jax import fileio

ITEMS = ("state", "data_iter", "meta")
BEST_FILE = "best_checkpoint.json"


class SaveFailed(RuntimeError):
    """A checkpoint could not be written; the message names the step, the folder and what is kept."""


def checkpoint_dir(workdir: str):
    return fileio.as_path(workdir) / "checkpoints"


def params_hash(tree: Any) -> str:
    """A short content hash of a tree of arrays (order of leaves, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        arr = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str(arr.shape).encode() + str(arr.dtype).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _metric_fn(name: str):
    return lambda metrics: float(metrics.get(name, float("inf")))


class Checkpoints:
    """The run's checkpoints: save / check / restore with retention that survives restarts."""

    def __init__(self, workdir: str, *, keep: int = 2, keep_best: int = 1, best_metric: str | None = None,
                 read_only: bool = False):
        self.directory = checkpoint_dir(workdir)
        self.workdir = fileio.as_path(workdir)
        self.best_metric = best_metric
        policies = [pp.LatestN(max(1, keep))]
        if best_metric is not None and keep_best > 0:
            policies.append(pp.BestN(get_metric_fn=_metric_fn(best_metric), reverse=True, n=keep_best,
                                     keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=None if read_only else pp.AnyPreservationPolicy(policies),
            best_fn=_metric_fn(best_metric) if best_metric else None, best_mode="min",
            create=not read_only, read_only=read_only, enable_async_checkpointing=not read_only,
            cleanup_tmp_directories=not read_only)
        self.mngr = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
        self._pending: int | None = None

    def steps(self) -> list[int]:
        return sorted(self.mngr.all_steps())

    def latest_step(self) -> int | None:
        return self.mngr.latest_step()

    def save(self, step: int, state: Any, data_iter: Any, meta: dict, metrics: dict | None = None,
             force: bool = False) -> None:
        """Start an asynchronous save (the previous one is finished and checked first)."""
        self.wait()
        try:
            self.mngr.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data_iter=grain.checkpoint.CheckpointSave(data_iter),
                meta=ocp.args.JsonSave(meta),
            ), metrics=metrics, force=force)
        except Exception as e:  # any I/O error of the synchronous part (directory creation, disk full)
            self._fail(step, e)
        self._pending = step
        self._write_best()

    def check(self) -> None:
        """Raise SaveFailed if the last save failed in the background; cheap while it is running."""
        if self._pending is None:
            return
        try:
            self.mngr.check_for_errors()
        except Exception as e:  # the background commit's error, as it raised it
            self._fail(self._pending, e)
        if not self.mngr.is_saving_in_progress():
            self.wait()

    def wait(self) -> None:
        """Block until the last save is committed; SaveFailed if it failed."""
        if self._pending is None:
            return
        step, self._pending = self._pending, None
        try:
            self.mngr.wait_until_finished()
            self.mngr.check_for_errors()
        except Exception as e:  # errors of the background commit arrive as assorted types
            self._fail(step, e)

    def _fail(self, step: int, err: Exception) -> None:
        self._pending = None
        removed = self._remove_temporary()
        self.mngr.reload()
        kept = self.steps()
        raise SaveFailed(f"saving checkpoint {step} to {self.directory} failed ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); "
                         f"{'removed its partial folder; ' if removed else ''}"
                         f"kept checkpoints: {kept if kept else 'none'}") from err

    def _remove_temporary(self) -> bool:
        """Delete half-written step folders (Orbax names them `<step>.orbax-checkpoint-tmp*`)."""
        if jax.process_index() != 0 or not self.directory.exists():
            return False
        found = False
        for p in self.directory.glob("*.orbax-checkpoint-tmp*"):
            found = True
            if fileio.is_remote(p):
                p.rmtree()
            else:
                shutil.rmtree(p, ignore_errors=True)
        return found

    def _write_best(self) -> None:
        if self.best_metric is None or jax.process_index() != 0:
            return
        best = self.mngr.best_step()
        if best is not None:
            value = (self.mngr.metrics(best) or {}).get(self.best_metric)
            fileio.atomic_write_json(self.workdir / BEST_FILE, {"step": int(best), "metric": self.best_metric,
                                                                "value": value})

    def restore(self, step: int, abstract_state: Any, data_iter: Any) -> tuple[Any, dict]:
        """(state, meta) at `step`, into the shardings of `abstract_state`; sets the iterator's state.

        A checkpoint written without a data iterator (`write_checkpoint`: an import, a hand-made run)
        restores the state only; the data order then starts from the beginning.
        """
        items = {"state": ocp.args.StandardRestore(abstract_state), "meta": ocp.args.JsonRestore()}
        if (self.directory / str(step) / "data_iter").exists():
            items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        else:
            logging.warning("checkpoint %d of %s has no data-iterator state; the data order starts afresh",
                            step, self.directory)
        out = self.mngr.restore(step, args=ocp.args.Composite(**items))
        return out["state"], out["meta"]

    def state_metadata(self, step: int) -> dict:
        """The saved state's tree of array metadata (`.shape`, `.dtype`) at `step`; no array is read."""
        return ocp.PyTreeCheckpointer().metadata(self.directory / str(step) / "state").item_metadata

    def restore_subtree(self, step: int, target: Any) -> Any:
        """Only the leaves of `target` (a tree of ShapeDtypeStructs with shardings, a subset of the saved
        state's tree) from checkpoint `step`, whatever topology saved it."""
        restored = self.mngr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True)))
        return restored["state"]

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._write_best()
            self.mngr.close()


def write_checkpoint(workdir: str, step: int, state: Any, meta: dict | None = None) -> None:
    """Write `state` as checkpoint `step` of a run folder, without a data iterator (weight imports,
    hand-made runs): `inference.load_for_inference` reads it, and training resumes from it with the
    data order started afresh. The run's config.json is the caller's to write (`engine.rundir`)."""
    ckpts = Checkpoints(workdir, keep=1)
    ckpts.mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave({"step": step, **(meta or {})})))
    ckpts.mngr.wait_until_finished()
    ckpts.mngr.close()


def quiet_orbax() -> None:
    """Silence Orbax's expected INFO/WARNING chatter (read-only managers, per-step progress)."""
    logging.get_absl_logger().addFilter(_OrbaxFilter())


class _OrbaxFilter:
    def filter(self, record) -> bool:
        return not (record.levelno < 40 and "orbax" in (record.pathname or ""))
