"""The engine on an object store: a toy run in gs:// (a local GCS server, tests/conftest.py
`gcs_bucket`) stopped and resumed three times equals the same run straight through on local disk."""
import json

import pytest

from speechvae_jax import fileio
from speechvae_jax.engine import checkpoint
from speechvae_jax.engine.logging import read_metrics
from speechvae_jax.engine.loop import run
from tests.engine import toy


def test_a_gs_run_resumes_exactly_like_a_local_one(tmp_path, gcs_bucket):
    local = str(tmp_path / "local")
    run(toy.toy_config(10, checkpoint_every=2), local, toy.make_task)
    remote = f"{gcs_bucket}/engine/run"
    for stop in (4, 7, 10):  # the run at 7 ends off the checkpoint grid
        result = run(toy.toy_config(stop, checkpoint_every=2), remote, toy.make_task)
        assert result.step == stop and result.stopped_by is None
    a = {r["step"]: r["loss"] for r in read_metrics(local) if "loss" in r}
    b = {r["step"]: r["loss"] for r in read_metrics(remote) if "loss" in r}
    assert sorted(a) == sorted(b) == list(range(1, 11))  # every step logged once, in gs://
    for s in a:
        assert a[s] == pytest.approx(b[s], rel=1e-6), s
    assert checkpoint.Checkpoints(remote, read_only=True).steps() == \
        checkpoint.Checkpoints(local, read_only=True).steps()
    best = fileio.read_json(f"{remote}/best_checkpoint.json")
    assert best == json.loads((tmp_path / "local" / "best_checkpoint.json").read_text())
    assert fileio.read_json(f"{remote}/config.json")["train"]["num_steps"] == 10
