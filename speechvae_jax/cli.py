"""The `speechvae` command: the one place that parses flags.

Usage:
  speechvae corpus --out DIR [--minutes N] [--seed S]
  speechvae data check SOURCE
  speechvae teacher convert SRC DST
  speechvae teacher pretrain --config configs/teacher_tiny.py --workdir DIR [--config.k=v ...]
  speechvae teacher cache --teacher PATH --data SOURCE --split S --out DIR
  speechvae train --config configs/tiny.py[:variant] --workdir DIR [--config.k=v ...]
  speechvae export --workdir RUN --data SOURCE --out DIR [--split S] [--mode mean|sample] [--dtype float16|float32]
  speechvae export --verify DIR
  speechvae decode --workdir RUN --latents DIR --out WAVDIR [--ids a,b]
  speechvae evaluate --workdir RUN [--axes reconstruction,understanding] [--data SOURCE]
                     [--eval_config configs/eval.py:PRESET --eval_config.k=v ...]

A SOURCE is `corpus:DIR`, `folder:DIR`, `commands:DIR` or `tfds:NAME@DATA_DIR` (docs/internals.md).
"""
from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS

config_flags.DEFINE_config_file("config", None, "A configs/*.py file, optionally `:variant`.",
                                lock_config=True)
config_flags.DEFINE_config_file("eval_config", None, "evaluate: the protocol, configs/eval.py[:preset] "
                                "(default: the built-in corpus protocol).", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, exports, evaluation).")
flags.DEFINE_string("out", None, "Output directory.")
flags.DEFINE_integer("minutes", 60, "corpus: minutes of sentence audio to synthesise.")
flags.DEFINE_integer("seed", 0, "corpus: random seed (same seed, same bytes).")
flags.DEFINE_integer("workers", 2, "Worker processes for synthesis / data loading.")
flags.DEFINE_string("data", None, "Data source spec: corpus:DIR, folder:DIR or tfds:NAME@DATA_DIR.")
flags.DEFINE_string("split", "test", "Dataset split.")
flags.DEFINE_enum("mode", "mean", ["mean", "sample"], "export: posterior mean or a sample.")
flags.DEFINE_enum("dtype", "float16", ["float16", "float32"], "export: stored latent dtype.")
flags.DEFINE_integer("shard_size", 256, "export: utterances per shard.")
flags.DEFINE_float("max_seconds", 600.0, "export: longer inputs are skipped (shorter long ones are "
                   "encoded in overlapping windows).")
flags.DEFINE_string("verify", None, "export: verify an export directory against its manifest.")
flags.DEFINE_string("latents", None, "decode: an export directory.")
flags.DEFINE_list("ids", None, "decode: utterance ids (default: all).")
flags.DEFINE_string("teacher", None, "teacher cache: path of a converted / pretrained teacher.")
flags.DEFINE_list("axes", ["reconstruction", "understanding"], "evaluate: which axes to run.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (multi-host; on TPU "
                  "pods and SLURM the arguments below are detected automatically).")
flags.DEFINE_string("coordinator_address", None, "distributed: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "distributed: number of processes.")
flags.DEFINE_integer("process_id", None, "distributed: this process's index.")

COMMANDS = ("corpus", "data", "teacher", "train", "export", "decode", "evaluate")


def _need(name: str) -> str:
    value = getattr(FLAGS, name)
    if value is None:
        raise app.UsageError(f"--{name} is required for this command")
    return value


def _config():
    if FLAGS.config is None:
        raise app.UsageError("--config is required for this command (e.g. configs/tiny.py)")
    return FLAGS.config


def _dispatch(args: list[str]) -> None:
    cmd, rest = args[0], args[1:]
    if cmd == "corpus":
        from speechvae_jax import corpus
        path = corpus.build_corpus(_need("out"), minutes=FLAGS.minutes, seed=FLAGS.seed,
                                   workers=FLAGS.workers)
        print(f"corpus written to {path}")
    elif cmd == "data":
        if rest[:1] != ["check"] or len(rest) != 2:
            raise app.UsageError("usage: speechvae data check SOURCE")
        from speechvae_jax.data import check
        report = check.check_source(rest[1])
        print(report.format())
    elif cmd == "teacher":
        sub = rest[:1]
        if sub == ["convert"] and len(rest) == 3:
            from speechvae_jax.teachers import convert
            convert.convert_checkpoint(rest[1], rest[2])
            print(f"teacher written to {rest[2]}")
        elif sub == ["pretrain"]:
            from speechvae_jax.teachers import pretrain
            pretrain.pretrain(_config(), _need("workdir"))
        elif sub == ["cache"]:
            from speechvae_jax.teachers import cache
            cache.build_cache(_need("teacher"), _need("data"), FLAGS.split, _need("out"))
        else:
            raise app.UsageError("usage: speechvae teacher {convert SRC DST | pretrain | cache}")
    elif cmd == "train":
        from speechvae_jax.train import loop
        loop.train_and_evaluate(_config(), _need("workdir"))
    elif cmd == "export":
        from speechvae_jax.export import codec, writer
        if FLAGS.verify:
            writer.verify_export(FLAGS.verify)
        else:
            writer.export_latents(_need("workdir"), _need("data"), _need("out"), split=FLAGS.split,
                                  mode=FLAGS.mode, dtype=FLAGS.dtype, shard_size=FLAGS.shard_size,
                                  buckets=codec.Buckets(max_seconds=FLAGS.max_seconds))
    elif cmd == "decode":
        from speechvae_jax.export import decode
        decode.decode_latents(_need("workdir"), _need("latents"), _need("out"), ids=FLAGS.ids)
    elif cmd == "evaluate":
        from speechvae_jax.evaluate import markdown, report
        result = report.evaluate(_need("workdir"), FLAGS.eval_config, axes=FLAGS.axes, data=FLAGS.data)
        if result is not None:  # process 0 assembles the report
            print(markdown.format_summary(result))
    else:
        raise app.UsageError(f"unknown command {cmd!r}; one of {', '.join(COMMANDS)}")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError(__doc__)
    if FLAGS.distributed:
        import jax
        jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                                   num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    _dispatch(argv[1:])


def run() -> None:
    """Console-script entry point. Compiled steps are cached on disk across runs and resumes."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                          os.path.join(os.path.expanduser("~"), ".cache", "speechvae_jax", "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.set_verbosity(logging.WARNING)  # library chatter off; --verbosity=0 brings INFO back
    app.run(main)


if __name__ == "__main__":
    run()
