"""One process of a local multi-process export (run by test_multiprocess.py as a script).

argv: process_id num_processes port params.msgpack config.json data_spec out_dir shard_size.
The params come from a file because restoring a one-process Orbax checkpoint in another process's
topology is the trainer's concern (load_for_inference), not what this test is about.
"""
import json
import sys

import jax


def main(pid: int, count: int, port: str, params_path: str, config_path: str, spec: str, out: str,
         shard_size: int) -> None:
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=count, process_id=pid)
    from flax import serialization
    from ml_collections import ConfigDict

    from speechvae_jax.data.sources import open_source
    from speechvae_jax.engine.checkpoint import params_hash
    from speechvae_jax.export import writer
    from speechvae_jax.inference import InferenceModel

    with open(params_path, "rb") as f:
        params = serialization.msgpack_restore(f.read())
    with open(config_path) as f:
        config = ConfigDict(json.load(f))
    model = InferenceModel(config=config, params=params, step=7, checkpoint_hash=params_hash(params))
    writer.export_model(model, open_source(spec, "test"), out, source_spec=spec, split="test",
                        options=writer.ExportOptions(shard_size=shard_size))


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]), int(a[1]), a[2], a[3], a[4], a[5], a[6], int(a[7]))
