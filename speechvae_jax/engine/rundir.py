"""A run folder: its config, the one-writer lock, and the resume check. Local or gs:// (etils epath).

    RUN/config.json        the full config of the run (written by process 0 at every start)
    RUN/run.lock           who is writing this folder: host, pid, start and heartbeat times
    RUN/checkpoints/       Orbax (engine.checkpoint)
    RUN/metrics.jsonl, RUN/tb/, RUN/samples/   (engine.logging)

Only process 0 holds the lock. A lock whose process is gone (same host, pid not running) or whose
heartbeat is older than `STALE_SECONDS` (any host) is stale and taken over, with a warning.
"""
from __future__ import annotations

import json
import os
import socket
import time

from absl import logging
from ml_collections import ConfigDict

from speechvae_jax import fileio

CONFIG_FILE = "config.json"
LOCK_FILE = "run.lock"
STALE_SECONDS = 15 * 60


class RunLocked(RuntimeError):
    """Another live process is writing this run folder."""


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _section_keys(config: dict, sections) -> dict:
    return {k: v for k, v in _flat(json.loads(json.dumps(config))).items() if k.split(".")[0] in sections}


def config_differences(saved: dict, current: dict, sections, saved_before=None) -> list[str]:
    """'key (old -> new)' for every key of `sections` that the saved config has and the current one
    changes or lacks (compared as JSON). A key the saved config lacks compares its `saved_before`
    value (what runs saved before the key existed were built with) where one is given; otherwise it
    is one of the `added_keys`, not a difference: the run resumes with the key's current value."""
    a, b = _section_keys(saved, sections), _section_keys(current, sections)
    a.update({k: v for k, v in _section_keys(saved_before or {}, sections).items() if k not in a and k in b})
    return [f"{k} ({a[k]!r} -> {b.get(k)!r})" for k in sorted(a) if a[k] != b.get(k)]


def added_keys(saved: dict, current: dict, sections, saved_before=None) -> list[str]:
    """Keys of `sections` in the current config that the saved one does not have (nor `saved_before`)."""
    a = {**_section_keys(saved_before or {}, sections), **_section_keys(saved, sections)}
    return sorted(k for k in _section_keys(current, sections) if k not in a)


def load_config(workdir: str) -> ConfigDict:
    """The config a run was started with (RUN/config.json)."""
    path = fileio.as_path(workdir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {workdir!r} a run directory?")
    return ConfigDict(json.loads(path.read_text()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """The folder of one run; `lock()` / `heartbeat()` / `unlock()` are no-ops off process 0."""

    def __init__(self, workdir: str, process_index: int = 0):
        self.path = fileio.as_path(workdir)
        self.primary = process_index == 0
        self._locked = False
        self._started = time.time()

    def __str__(self) -> str:
        return str(self.path)

    # ---- config -----------------------------------------------------------------------------------
    def check_resume(self, config: ConfigDict, sections, saved_before=None) -> None:
        """Refuse to continue a run whose shape- or data-defining config sections changed
        (`saved_before`: config_differences)."""
        path = self.path / CONFIG_FILE
        if not path.exists():
            return
        saved = json.loads(path.read_text())
        diff = config_differences(saved, config.to_dict(), sections, saved_before)
        added = added_keys(saved, config.to_dict(), sections, saved_before)
        if added and not diff:
            logging.warning("%s was saved before these config keys existed; resuming with their current values: %s",
                            self.path, ", ".join(added))
        if diff:
            raise ValueError(f"{self.path} holds a run with a different config; these keys differ: "
                             + ", ".join(diff) + ". Use a new --workdir, or the same config to resume.")

    def write_config(self, config: ConfigDict) -> None:
        if self.primary:
            fileio.atomic_write_text(self.path / CONFIG_FILE,
                                     json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")

    # ---- lock -------------------------------------------------------------------------------------
    def _record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "started": self._started,
                "heartbeat": time.time()}

    def holder(self) -> dict | None:
        """The lock record, or None when the folder is not locked."""
        path = self.path / LOCK_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a lock being written right now, or a torn one: treat as held, stale by age
            return {"host": "?", "pid": -1, "heartbeat": path.stat().mtime}

    def _stale(self, rec: dict) -> str | None:
        if rec.get("host") == socket.gethostname() and rec.get("pid", -1) > 0 and not _pid_alive(rec["pid"]):
            return f"process {rec['pid']} on this host is gone"
        age = time.time() - float(rec.get("heartbeat", 0))
        if age > STALE_SECONDS:
            return f"no heartbeat for {age / 60:.0f} min"
        return None

    def lock(self) -> None:
        """Take the run's lock or raise RunLocked naming the holder; a stale lock is taken over."""
        if not self.primary:
            return
        path = self.path / LOCK_FILE
        rec = self.holder()
        if rec is None and self._create_exclusive(path):
            self._locked = True
            return
        rec = self.holder() or rec
        if rec is not None and not (rec.get("host") == socket.gethostname() and rec.get("pid") == os.getpid()):
            why = self._stale(rec)
            if why is None:
                raise RunLocked(f"{self.path} is in use by pid {rec.get('pid')} on host {rec.get('host')} "
                                f"(lock {path}, heartbeat {time.time() - float(rec.get('heartbeat', 0)):.0f} s "
                                "ago). Wait for it to finish, stop it, or use another --workdir.")
            logging.warning("taking over the stale lock of %s (%s)", self.path, why)
        self._write_lock()
        self._locked = True

    def _create_exclusive(self, path) -> bool:
        """Create the lock file only if absent (atomic on a local disk); False if another process won."""
        if fileio.is_remote(path):
            return False  # object stores have no exclusive create: fall through to the checked write
        try:
            fd = os.open(os.fspath(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self._record(), f)
        return True

    def _write_lock(self) -> None:
        fileio.atomic_write_json(self.path / LOCK_FILE, self._record())

    def heartbeat(self) -> None:
        if self._locked:
            self._write_lock()

    def unlock(self) -> None:
        if self._locked:
            try:
                (self.path / LOCK_FILE).unlink()
            except FileNotFoundError:
                pass
            self._locked = False
