"""Kill training and export at random moments (SIGKILL, no warning), resume, and check exact equality.

    python -m tests.fault_injection --kills 10 --seed 0 --out /tmp/faults

1. Training (the toy trainer on the engine, tests/engine/toy.py): a reference run straight through, then
   a run killed `--kills` times at random moments and restarted each time until it finishes. Checks:
   the final parameters' hash is the reference's, metrics.jsonl holds each step once with the
   reference's losses, the retained checkpoints are the reference's, and every restart took over the
   dead process's lock.
2. Export (`speechvae export` of a random-weight tiny VAE run on a 2-minute built-in corpus): a reference
   export, then one killed `--kills` times and resumed. Checks: byte-identical shards and manifest.

Prints one line per kill and a summary; exits 1 on any mismatch. The test suite runs it with 2 kills
(tests/engine/test_fault_injection.py); the figures for more kills are in the issue notes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
       "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _run_to_end(cmd: list[str], timeout: float = 900) -> str:
    out = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout


def _killed_then_finished(cmd: list[str], kills: int, rng: random.Random, window: tuple[float, float],
                          progress) -> tuple[str, list[str]]:
    """Start `cmd`, SIGKILL it after a random delay in `window` (seconds after its start), `kills`
    times, then let it finish."""
    log = []
    for k in range(kills):
        p = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(*window)
        try:
            p.wait(timeout=delay)
            log.append(f"kill {k + 1}: the process finished before {delay:.1f} s")
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            log.append(f"kill {k + 1}: SIGKILL after {delay:.1f} s ({progress()})")
        print(log[-1], flush=True)
    return _run_to_end(cmd), log


def _toy_rows(workdir: str) -> dict[int, float]:
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    steps = [r["step"] for r in rows if "loss" in r]
    if len(steps) != len(set(steps)):
        raise AssertionError(f"{workdir}/metrics.jsonl repeats steps")
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def training(out: str, kills: int, rng: random.Random, steps: int = 3000) -> list[str]:
    cmd = [sys.executable, "-m", "tests.engine.toy_main"]
    ref_dir, dir_ = os.path.join(out, "train_ref"), os.path.join(out, "train_killed")
    t0 = time.time()
    ref = _run_to_end(cmd + [ref_dir, str(steps)])
    straight = time.time() - t0
    walls = [json.loads(line)["perf/wall_time"] for line in open(os.path.join(ref_dir, "metrics.jsonl"))]
    first, last = min(walls) - t0, max(walls) - t0  # when the reference trained, after its start

    def progress():
        rows = _toy_rows(dir_) if os.path.exists(os.path.join(dir_, "metrics.jsonl")) else {}
        return f"last logged step {max(rows) if rows else 0}"

    last, log = _killed_then_finished(cmd + [dir_, str(steps)], kills, rng,
                                      (first, first + 0.7 * (last - first)), progress)
    problems = []
    if ref.split("RESULT")[-1].strip() != last.split("RESULT")[-1].strip():
        problems.append(f"final state differs: {ref.strip()} vs {last.strip()}")
    a, b = _toy_rows(ref_dir), _toy_rows(dir_)
    if sorted(a) != sorted(b) or any(abs(a[s] - b[s]) > 1e-6 * max(1.0, abs(a[s])) for s in a):
        problems.append("metrics.jsonl losses differ from the reference")
    kept = [sorted(os.listdir(os.path.join(d, "checkpoints"))) for d in (ref_dir, dir_)]
    if kept[0] != kept[1]:
        problems.append(f"retained checkpoints differ: {kept[0]} vs {kept[1]}")
    print(f"training: {kills} kills, reference {straight:.1f} s, {len(a)} logged steps compared, "
          f"{'EQUAL' if not problems else 'DIFFERENT: ' + '; '.join(problems)}", flush=True)
    return problems


def export(out: str, kills: int, rng: random.Random) -> list[str]:
    corpus = os.path.join(out, "corpus")
    run_dir = os.path.join(out, "vae_run")
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        _run_to_end([sys.executable, "-m", "speechvae_jax", "corpus", "--out", corpus, "--minutes", "2"])
        _run_to_end([sys.executable, "-c", _MAKE_RUN, run_dir, corpus])
    cmd = [sys.executable, "-m", "speechvae_jax", "export", "--workdir", run_dir, "--data", f"corpus:{corpus}",
           "--split", "train", "--shard-size", "4"]
    t0 = time.time()
    _run_to_end(cmd + ["--out", os.path.join(out, "export_ref")])
    straight = time.time() - t0
    done = lambda: f"{len([f for f in os.listdir(os.path.join(out, 'export_killed')) if f.endswith('.json')])} " \
                   "files committed" if os.path.isdir(os.path.join(out, "export_killed")) else "nothing written"
    _killed_then_finished(cmd + ["--out", os.path.join(out, "export_killed")], kills, rng,
                          (0.5 * straight, straight), done)
    problems = []
    ref_files = sorted(f for f in os.listdir(os.path.join(out, "export_ref")) if not f.startswith("."))
    got_files = sorted(f for f in os.listdir(os.path.join(out, "export_killed")) if not f.startswith("."))
    if ref_files != got_files:
        problems.append(f"files differ: {sorted(set(ref_files) ^ set(got_files))}")
    for f in ref_files:
        a = open(os.path.join(out, "export_ref", f), "rb").read()
        b = open(os.path.join(out, "export_killed", f), "rb").read() if f in got_files else b""
        if a != b:
            problems.append(f"{f} differs")
    print(f"export: {kills} kills, reference {straight:.1f} s, {len(ref_files)} files, "
          f"{'BYTE-IDENTICAL' if not problems else 'DIFFERENT: ' + '; '.join(problems)}", flush=True)
    return problems


_MAKE_RUN = """
import json, os, sys
import jax, numpy as np
from speechvae_jax.engine import checkpoint
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.run import vae_config
run_dir, corpus = sys.argv[1], sys.argv[2]
config = vae_config("tiny", "none")
config.data.source = "corpus:" + corpus
os.makedirs(run_dir, exist_ok=True)
params = jax.jit(SpeechVAE(config.model).init)(jax.random.PRNGKey(0), np.zeros((1, 4000), np.float32))["params"]
json.dump(config.to_dict(), open(os.path.join(run_dir, "config.json"), "w"))
checkpoint.write_checkpoint(run_dir, 1, {"ema": {"vae": params}})
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", choices=("training", "export"), default=None)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)
    problems = []
    if args.only in (None, "training"):
        problems += training(args.out, args.kills, rng)
    if args.only in (None, "export"):
        problems += export(args.out, args.kills, rng)
    print("fault injection:", "PASSED" if not problems else "FAILED", flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
