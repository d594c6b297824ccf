"""Run the toy trainer of tests/engine/toy.py in its own process (the fault-injection script kills it).

    python -m tests.engine.toy_main WORKDIR NUM_STEPS

Prints `RESULT step=<n> hash=<params hash>` when it finishes; exits 75 when stopped by SIGTERM.
"""
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from speechvae_jax.engine.checkpoint import params_hash  # noqa: E402
from speechvae_jax.engine.loop import run  # noqa: E402
from tests.engine import toy  # noqa: E402


def main() -> int:
    workdir, num_steps = sys.argv[1], int(sys.argv[2])
    cfg = toy.toy_config(num_steps, checkpoint_every=50, log_every=10)
    cfg.evals.val.every = 50
    result = run(cfg, workdir, toy.make_task)
    if result.stopped_by is None:
        print(f"RESULT step={result.step} hash={params_hash(result.state['w'])}", flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
