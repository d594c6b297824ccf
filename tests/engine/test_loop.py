"""The engine with a toy trainer: exact resume, retention over restarts, one metric row per step,
failed saves, divergence, the run lock, Ctrl-C / SIGTERM (also during a compilation), bad paths."""
import json
import os
import resource
import signal
import socket
import threading
import time

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.engine import checkpoint, rundir, signals
from speechvae_jax.engine.logging import read_metrics
from speechvae_jax.engine.loop import Diverged, run
from tests.engine import toy


@pytest.fixture(autouse=True)
def _clear_faults():
    toy.FAULTS.clear()
    yield
    toy.FAULTS.clear()


def _losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}


def test_resume_is_exact_and_retention_survives_three_restarts(tmp_path):
    straight = str(tmp_path / "straight")
    run(toy.toy_config(12, checkpoint_every=2), straight, toy.make_task)
    work = str(tmp_path / "work")
    for stop in (4, 7, 10, 12):  # three restarts; the run at 7 ends off the checkpoint grid
        result = run(toy.toy_config(stop, checkpoint_every=2), work, toy.make_task)
        assert result.step == stop and result.stopped_by is None
    a, b = _losses(straight), _losses(work)
    assert sorted(a) == sorted(b) == list(range(1, 13))  # every step logged exactly once
    for s in a:
        assert a[s] == pytest.approx(b[s], rel=1e-6), s
    steps = checkpoint.Checkpoints(work, read_only=True).steps()
    straight_steps = checkpoint.Checkpoints(straight, read_only=True).steps()
    assert steps == straight_steps  # latest 2 plus the best one, whatever the restarts
    assert len(steps) <= 3 and 12 in steps and 10 in steps
    best = json.loads((tmp_path / "work" / "best_checkpoint.json").read_text())
    assert best["metric"] == "val/mse" and best["step"] in steps


def test_metric_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    work = str(tmp_path / "run")
    run(toy.toy_config(5, checkpoint_every=4), work, toy.make_task)  # checkpoints 4 and 5
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # As if killed after logging step 7 with the checkpoint at 5: rows 6 and 7 are lost progress.
    extra = [{**rows[-1], "step": 6}, {**rows[-1], "step": 7}]
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
    run(toy.toy_config(8, checkpoint_every=4), work, toy.make_task)
    steps = [r["step"] for r in read_metrics(work) if "loss" in r]
    assert steps == list(range(1, 9))


def test_a_failed_save_stops_the_run_at_that_step(tmp_path):
    """A real write failure (the file-size limit of this process, as a full disk would) at step 8: the run
    stops within the checkpoint interval that follows, names what failed and keeps the step-4 checkpoint."""
    work = str(tmp_path / "run")
    cfg = toy.toy_config(20, checkpoint_every=4, log_every=100)
    cfg.toy.pad = 100_000  # a 400 kB parameter: over the limit set below
    resume_cfg = ConfigDict(cfg.to_dict())
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def disk_full():  # once the step-4 checkpoint is committed, no file may grow past 50 kB
        deadline = time.time() + 120
        while not (tmp_path / "run" / "checkpoints" / "4" / "_CHECKPOINT_METADATA").exists():
            assert time.time() < deadline, "the step-4 checkpoint was never committed"
            time.sleep(0.05)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, old_limit[1]))

    toy.FAULTS[8] = disk_full
    try:
        with pytest.raises(checkpoint.SaveFailed, match=r"saving checkpoint 8 to .*checkpoints failed") as err:
            run(cfg, work, toy.make_task)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert "kept checkpoints: [4]" in str(err.value) and "File too large" in str(err.value)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["4"]  # no half-written folder left
    assert max(r["step"] for r in read_metrics(work)) <= 12  # at the latest where the next save was due
    assert not (tmp_path / "run" / "run.lock").exists()
    resumed = run(resume_cfg, work, toy.make_task)
    assert resumed.step == 20  # the kept checkpoint resumes


def test_check_reports_a_background_failure_without_another_save(tmp_path):
    """Checkpoints.check(), called every step by the loop, surfaces a failed asynchronous commit."""
    import grain

    ckpts = checkpoint.Checkpoints(str(tmp_path), keep=2)
    it = iter(grain.MapDataset.range(10).to_iter_dataset())
    state = {"w": np.random.default_rng(0).standard_normal(100_000).astype(np.float32)}
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, old_limit[1]))
    try:
        ckpts.save(1, state, it, {"step": 1})
        deadline = time.time() + 120
        with pytest.raises(checkpoint.SaveFailed, match="saving checkpoint 1"):
            while time.time() < deadline:
                ckpts.check()
                time.sleep(0.01)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    assert os.listdir(tmp_path / "checkpoints") == []
    ckpts.close()


def test_persistent_nan_aborts_without_saving(tmp_path):
    work = str(tmp_path / "run")
    cfg = toy.toy_config(40, checkpoint_every=10, max_consecutive_skips=5)
    cfg.toy.lr = 1e6  # diverges within a few steps, then every update is skipped
    with pytest.raises(Diverged, match=r"updates were skipped") as err:
        run(cfg, work, toy.make_task)
    assert "Last finite losses" in str(err.value)
    saved = checkpoint.Checkpoints(work, read_only=True).steps()
    assert all(s < 10 for s in saved)  # nothing saved after the divergence


def _write_lock(work, **rec):
    (work / "run.lock").write_text(json.dumps({"host": socket.gethostname(), "heartbeat": time.time(), **rec}))


def test_the_run_lock_refuses_live_writers_and_takes_over_stale_ones(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    rd = rundir.RunDir(str(work))
    rd.lock()
    assert json.loads((work / "run.lock").read_text())["pid"] == os.getpid()
    rd.unlock()
    assert not (work / "run.lock").exists()
    _write_lock(work, pid=1)  # a live process on this host
    with pytest.raises(rundir.RunLocked, match="in use by pid 1 on host"):
        rundir.RunDir(str(work)).lock()
    _write_lock(work, host="elsewhere", pid=7)  # another host, fresh heartbeat
    with pytest.raises(rundir.RunLocked, match="elsewhere"):
        rundir.RunDir(str(work)).lock()
    for stale in ({"pid": 2 ** 22 + 12345},  # this host, process gone
                  {"host": "elsewhere", "pid": 7, "heartbeat": time.time() - 2 * rundir.STALE_SECONDS}):
        _write_lock(work, **stale)
        rundir.RunDir(str(work)).lock()
        assert json.loads((work / "run.lock").read_text())["pid"] == os.getpid()


def test_a_run_refuses_a_folder_with_a_live_writer(tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    _write_lock(work, pid=1)
    with pytest.raises(rundir.RunLocked, match="in use by pid 1"):
        run(toy.toy_config(2), str(work), toy.make_task)
    assert not (work / "checkpoints").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_and_stops(tmp_path, sig):
    work = str(tmp_path / "run")
    toy.FAULTS[4] = lambda: os.kill(os.getpid(), sig)  # arrives while step 4 is evaluated
    result = run(toy.toy_config(100, checkpoint_every=50), work, toy.make_task)
    assert result.stopped_by == signal.Signals(sig).name and result.step == 4
    assert result.exit_code == {signal.SIGINT: 130, signal.SIGTERM: 75}[sig]
    assert checkpoint.Checkpoints(work, read_only=True).latest_step() == 4
    resumed = run(toy.toy_config(6, checkpoint_every=50), work, toy.make_task)
    assert resumed.step == 6 and resumed.stopped_by is None


def test_a_signal_during_compilation_is_honoured_before_it_ends(tmp_path):
    work = str(tmp_path / "run")
    cfg = toy.toy_config(5)
    cfg.toy.unroll = 400 + int(time.time()) % 97  # a fresh step that compiles for seconds (never cached)
    seen = {}

    def preempt():
        while not os.path.exists(os.path.join(work, "run.lock")):
            time.sleep(0.05)
        time.sleep(0.5)
        seen["sent"] = time.time()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=preempt, daemon=True).start()
    result = run(cfg, work, toy.make_task)
    assert result.stopped_by == "SIGTERM" and result.step == 0
    assert signals.abandoned_work_running()  # it returned while the compilation was still going
    assert checkpoint.Checkpoints(work, read_only=True).steps() == []  # nothing to save at step 0
    for thread in signals.ABANDONED:
        thread.join()


def test_an_unwritable_workdir_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="cannot write to /proc"):
        run(toy.toy_config(2), "/proc/speechvae_no_such_run", toy.make_task)
    with pytest.raises(ValueError, match="malformed object-store URL"):
        run(toy.toy_config(2), "gs:/bucket/run", toy.make_task)


def test_changed_frozen_config_is_refused_on_resume(tmp_path):
    work = str(tmp_path / "run")
    run(toy.toy_config(2), work, toy.make_task)
    cfg = toy.toy_config(4)
    cfg.toy.pad = 3
    with pytest.raises(ValueError, match=r"toy.pad \(0 -> 3\)"):
        run(cfg, work, toy.make_task)


def test_fused_and_split_steps_agree(tmp_path):
    a = run(toy.toy_config(4, step_mode="fused"), str(tmp_path / "a"), toy.make_task)
    b = run(toy.toy_config(4, step_mode="split"), str(tmp_path / "b"), toy.make_task)
    np.testing.assert_allclose(jax.device_get(a.state["w"]), jax.device_get(b.state["w"]), rtol=1e-6)
