"""Stopping a run cleanly: SIGTERM (preemption) and SIGINT (Ctrl-C) become a flag the loop checks.

The loop asks `should_stop(step)` after every step. In one process that is the local flag. With several
processes they must all stop at the same step, so the flags are combined (an all-gather) only every
`sync_every` steps, not every step, together with JAX's preemption notice where the runtime has one
(TPU VMs under `jax.distributed`). A second Ctrl-C raises KeyboardInterrupt at once.

`compile_interruptibly` runs an ahead-of-time compilation in a thread and returns early when a
signal arrives, so a preemption notice during a long first compilation is acted on at once.
"""
from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from absl import logging

EXIT_CODES = {"SIGTERM": 75, "SIGINT": 130}  # 75 = EX_TEMPFAIL: "stopped, run again to resume"
# Compilations left running by a stop. A process must not exit normally while one runs (the C++ thread
# would be torn down mid-work and abort the process): the CLI leaves with os._exit, a test joins them.
ABANDONED: list[threading.Thread] = []


def abandoned_work_running() -> bool:
    return any(t.is_alive() for t in ABANDONED)


class Interrupts:
    """Install handlers for SIGTERM and SIGINT (main thread only); `restore()` puts the old ones back."""

    def __init__(self, sync_every: int = 50):
        self.sync_every = max(1, int(sync_every))
        self.signal: str | None = None
        self.received_at: float | None = None
        self._event = threading.Event()
        self.abandoned: list[threading.Thread] = []  # work left running when a signal arrived
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum, frame):
        name = signal.Signals(signum).name
        if self._event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now, without saving
        logging.warning("%s received: saving a checkpoint and stopping (Ctrl-C again to abort)", name)
        self.signal, self.received_at = name, time.time()
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def should_stop(self, step: int) -> bool:
        """True on every process at the same step once any process was signalled (or preempted)."""
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        if multihost_utils.reached_preemption_sync_point(step):
            self.signal = self.signal or "SIGTERM"
            return True
        if step % self.sync_every:
            return False
        flags = multihost_utils.process_allgather(np.array(self.requested))
        if np.any(flags) and self.signal is None:
            self.signal = "SIGTERM"  # another process was signalled
        return bool(np.any(flags))

    def wait_or_stop(self, work: Callable[[], Any], what: str) -> tuple[bool, Any]:
        """Run `work()` in a thread; (True, result) when it finishes, (False, None) as soon as a signal
        arrives first (the thread is left to finish on its own)."""
        out: dict = {}

        def target():
            try:
                out["value"] = work()
            except BaseException as e:  # re-raised in the caller's thread
                out["error"] = e

        thread = threading.Thread(target=target, name=what, daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(timeout=0.2)
            if self.requested and thread.is_alive():
                logging.warning("%s arrived during %s; stopping without waiting for it (%.1f s after "
                                "the signal)", self.signal, what, time.time() - self.received_at)
                self.abandoned.append(thread)
                ABANDONED.append(thread)
                return False, None
        if "error" in out:
            raise out["error"]
        return True, out["value"]

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
