"""A 2-process export (local jax.distributed, 1 CPU device each) = the 1-process `speechvae export`."""
import os
import socket
import subprocess
import sys

import pytest

from speechvae_jax import fileio
from speechvae_jax.export import latent_source, layout

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-3000:]
        outs.append(out)
    return outs


@pytest.mark.slow
def test_two_process_export_equals_one_process(tiny_run, tiny_model, tiny_corpus, tmp_path):
    from flax import serialization

    params = tmp_path / "params.msgpack"
    params.write_bytes(serialization.msgpack_serialize(jax_to_numpy(tiny_model.params)))
    config = os.path.join(tiny_run, "config.json")
    port = str(_free_port())
    two = [_start([os.path.join(HERE, "mp_worker.py"), str(i), "2", port, str(params), config, tiny_corpus,
                   str(tmp_path / "two"), "3"]) for i in range(2)]
    one = _start(["-m", "speechvae_jax", "export", "--workdir", tiny_run, "--data", tiny_corpus, "--split",
                  "test", "--shard-size", "3", "--out", str(tmp_path / "one")])
    _finish(two + [one])
    m1 = fileio.read_json(tmp_path / "one" / layout.MANIFEST)
    m2 = fileio.read_json(tmp_path / "two" / layout.MANIFEST)
    assert m1 == m2 and len(m1["shards"]) >= 3
    for shard in m1["shards"]:
        assert (tmp_path / "one" / shard["file"]).read_bytes() == (tmp_path / "two" / shard["file"]).read_bytes()
    src1, src2 = latent_source(str(tmp_path / "one")), latent_source(str(tmp_path / "two"))
    assert len(src1) == m1["counts"]["inputs"] and src1.ids() == src2.ids()
    [out] = _finish([_start(["-m", "speechvae_jax", "export-verify", str(tmp_path / "two")])])
    assert "OK" in out


def jax_to_numpy(tree):
    import jax
    import numpy as np

    return jax.tree.map(np.asarray, tree)
