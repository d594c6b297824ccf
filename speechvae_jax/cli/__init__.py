"""`speechvae` (also `python -m speechvae_jax`): the one place that parses flags.

`speechvae` or `speechvae --help` lists the commands; `speechvae COMMAND --help` lists that command's
own flags with an example. Errors a user can fix print one `error:` line and exit non-zero; add
`--verbose` for library logs and tracebacks. Commands import their heavy modules (models, training,
evaluation) only when they run, so help and argument errors answer within a few seconds.
"""
from __future__ import annotations

import argparse
import logging as py_logging
import os
import sys
import traceback

from speechvae_jax import fileio
from speechvae_jax.cli import commands
from speechvae_jax.cli.config import ConfigError, split_overrides

EXAMPLES = """examples:
  speechvae corpus --out demo_out/corpus --minutes 60
  speechvae train --config configs/tiny.py:joint_marginal --workdir runs/tiny --config.train.num_steps=500
  speechvae export --workdir runs/tiny --data folder:my_recordings --out runs/tiny/export/mine
  speechvae evaluate --workdir runs/tiny

A SOURCE is corpus:DIR (the built-in corpus), folder:DIR (audio files; LibriSpeech / LibriTTS layouts
recognised) or tfds:NAME@DATA_DIR. Paths may be gs://bucket/... where noted."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechvae", description="Speech VAEs (16 kHz, 40 Hz, 64-d latents) aligned to SSL teachers, "
        "in JAX/Flax.", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="library logs and full tracebacks")
    commands.add_distributed_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    for spec in commands.COMMANDS:
        if spec.group is None:
            spec.add(sub)
            continue
        if spec.group not in groups:
            gp = sub.add_parser(spec.group, help=commands.GROUPS[spec.group], description=commands.GROUPS[spec.group])
            gp.set_defaults(group_parser=gp)
            groups[spec.group] = gp.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
        spec.add(groups[spec.group])
    return parser


def _setup_environment(verbose: bool) -> None:
    """Persistent XLA compile cache, quiet C++ logs, absl/Python logging at WARNING (INFO with
    --verbose); Orbax's expected chatter, and gcsfs's warning when it falls back from probing a bucket's
    type (no application-default credentials), are dropped unless --verbose."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import jax  # already loaded by the config modules, so set the cache through jax.config, not the env

    jax.config.update("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(
        fileio.cache_root(), "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      float(os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "2")))
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
    py_logging.getLogger().setLevel(py_logging.INFO if verbose else py_logging.WARNING)
    if not verbose:
        absl_logging.get_absl_logger().addFilter(_quiet_libraries)
        py_logging.getLogger("gcsfs").setLevel(py_logging.ERROR)


def _quiet_libraries(record) -> bool:
    """Drop Orbax / Grain / absl-routed library records below ERROR, and Orbax's errors too (a failed
    save is reported in one line by the engine)."""
    path = record.pathname or ""
    return not (("orbax" in path or "grain" in path or "etils" in path) and (record.levelno < 50))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        argv, overrides = split_overrides(argv)
    except ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not hasattr(args, "handler"):  # a group without its subcommand
        args.group_parser.print_help()
        return 2
    if overrides and not getattr(args, "takes_config", False):
        parser.error(f"{args.command} takes no --config.* overrides")
    args.overrides = overrides
    _setup_environment(args.verbose)
    try:
        commands.maybe_initialize_distributed(args)
        code = args.handler(args) or 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    except Exception as e:  # every failure ends in one line; --verbose shows where it came from
        if args.verbose:
            traceback.print_exc()
        print(f"error: {commands.describe(e)}", file=sys.stderr)
        code = 2 if isinstance(e, ConfigError) else 1
    return code


def run() -> None:
    """Console-script entry point."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    from speechvae_jax.engine import signals

    if signals.abandoned_work_running():  # a stop left a compilation running: leave without waiting for it
        os._exit(code)
    if code not in (0, *signals.EXIT_CODES.values()) and _several_processes():
        # a failure on one process of several: jax.distributed's exit handshake would wait for the others,
        # which may be stuck in a collective with this one; leave now (they fail when it is gone)
        os._exit(code)
    sys.exit(code)


def _several_processes() -> bool:
    if "jax" not in sys.modules:
        return False
    import jax

    return jax.distributed.is_initialized() and jax.process_count() > 1
