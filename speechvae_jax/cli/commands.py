"""The commands of `speechvae`: each one's flags, help, example and handler.

A handler takes the parsed arguments and returns an exit code (None = 0). Library modules are imported
inside handlers so that `--help` and usage errors answer without building models or compiling.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable

from speechvae_jax.cli import config as cli_config


@dataclasses.dataclass
class Command:
    """`speechvae [GROUP] NAME ...`: its one-line help, an example, its flags and its handler."""
    name: str
    help: str
    example: str
    flags: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int | None]
    takes_config: bool = False
    group: str | None = None
    config_help: str = ""  # set: --config is optional and means this (evaluate: the protocol)

    def add(self, sub) -> None:
        p = sub.add_parser(self.name, help=self.help, description=self.help, epilog=f"example:\n  {self.example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="library logs and full tracebacks")
        if self.takes_config:
            p.add_argument("--config", required=not self.config_help, default=None, metavar="FILE[:VARIANT]",
                           help=self.config_help or "a configs/*.py file (optionally :variant); override keys "
                           "with --config.KEY=VALUE")
        self.flags(p)
        p.set_defaults(handler=self.handler, takes_config=self.takes_config)


def describe(err: BaseException) -> str:
    """One line for an error: its message, with the exception type where the message needs it."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # KeyError quotes its message
        text = text[1:-1]
    if isinstance(err, (ValueError, KeyError, FileNotFoundError, RuntimeError, OSError)) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _config(args):
    return cli_config.load(args.config, args.overrides)


def _run_exit(result) -> int:
    return result.exit_code


# ---- distributed start-up -----------------------------------------------------------------------

def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("multi-process runs (docs/scaling.md)")
    g.add_argument("--distributed", choices=("auto", "on", "off"), default="auto",
                   help="jax.distributed start-up: auto (on under SLURM / Open MPI with several tasks and "
                        "on multi-host TPU VMs, or when a coordinator is given), on, off")
    g.add_argument("--coordinator-address", default=os.environ.get("SPEECHVAE_COORDINATOR"),
                   help="host:port of process 0 (env SPEECHVAE_COORDINATOR)")
    g.add_argument("--num-processes", type=int, default=_env_int("SPEECHVAE_NUM_PROCESSES"),
                   help="number of processes (env SPEECHVAE_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=_env_int("SPEECHVAE_PROCESS_ID"),
                   help="this process's index (env SPEECHVAE_PROCESS_ID)")
    g.add_argument("--heartbeat-timeout", type=int, default=_env_int("SPEECHVAE_HEARTBEAT_TIMEOUT") or 100,
                   help="seconds without a heartbeat before a process is declared dead and the job stops "
                        "(100; env SPEECHVAE_HEARTBEAT_TIMEOUT)")
    g.add_argument("--local-device-ids", default=os.environ.get("SPEECHVAE_LOCAL_DEVICE_IDS"),
                   help="comma-separated local accelerator ids this process drives (env SPEECHVAE_LOCAL_DEVICE_IDS); "
                        "under SLURM / Open MPI jax defaults to one device per process (the local rank's)")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _cluster_detected() -> bool:
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        if int(os.environ.get(name, "1") or 1) > 1:
            return True
    return len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1


def maybe_initialize_distributed(args) -> None:
    """jax.distributed.initialize: with the given coordinator, or auto-detected on clusters."""
    explicit = args.coordinator_address is not None
    if args.distributed == "off" or (args.distributed == "auto" and not explicit and not _cluster_detected()):
        return
    import jax

    local = None if not args.local_device_ids else [int(i) for i in args.local_device_ids.split(",")]
    options = {"local_device_ids": local, "heartbeat_timeout_seconds": args.heartbeat_timeout}
    if explicit:
        if args.num_processes is None or args.process_id is None:
            raise ValueError("--coordinator-address needs --num-processes and --process-id")
        jax.distributed.initialize(coordinator_address=args.coordinator_address, num_processes=args.num_processes,
                                   process_id=args.process_id, **options)
    else:  # TPU VMs, SLURM and Open MPI describe the cluster themselves
        jax.distributed.initialize(**options)


# ---- commands -----------------------------------------------------------------------------------

def _corpus_flags(p):
    p.add_argument("--out", required=True, help="output directory (a TFDS dataset + corpus_info.json)")
    p.add_argument("--minutes", type=float, default=60, help="minutes of sentence audio to synthesise (60)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same bytes (0)")
    p.add_argument("--workers", type=int, default=2, help="synthesis processes (2)")


def _corpus(args):
    from speechvae_jax import corpus

    path = corpus.build_corpus(args.out, minutes=args.minutes, seed=args.seed, workers=args.workers)
    print(f"corpus written to {path}")


def _check_flags(p):
    p.add_argument("source", help="SOURCE to scan")
    p.add_argument("--splits", default=None, help="comma-separated splits (default: all)")
    p.add_argument("--allow-problems", action="store_true", help="exit 0 even if items are unusable")


def _check(args):
    from speechvae_jax.data import check

    report = check.check_source(args.source, args.splits.split(",") if args.splits else None)
    print(report.format())
    if report.problems and not args.allow_problems:
        print(f"error: {report.problems} unusable item(s) in {args.source} (listed above); "
              "--allow-problems to accept them", flush=True)
        return 1
    return 0


def _convert_flags(p):
    p.add_argument("src", help="a Hugging Face WavLM / HuBERT / wav2vec2 directory or an original WavLM .pt")
    p.add_argument("dst", help="output teacher directory")


def _convert(args):
    from speechvae_jax.teachers import convert

    print(f"teacher written to {convert.convert_checkpoint(args.src, args.dst)}")


def _release_flags(p):
    p.add_argument("ckpt", help="a JMAS-VAE / Stable Audio Tools checkpoint: Lightning .ckpt, or a bare "
                   "state dict (.pt / .safetensors)")
    p.add_argument("out", help="the run folder to write (export, decode, evaluate and train accept it)")
    p.add_argument("--config", default="configs/paper.py:none", metavar="FILE[:VARIANT]",
                   help="the run config of the imported model (default configs/paper.py:none)")
    p.add_argument("--teacher-dim", type=int, default=None,
                   help="teacher feature width, for a config with an alignment scheme (fresh projection head)")


def _release(args):
    from speechvae_jax.train import release_import

    report = release_import.convert_release(args.ckpt, args.out, _config(args), teacher_dim=args.teacher_dim)
    print(f"imported {report['used']} tensors ({len(report['unexpected'])} unexpected, listed in "
          f"{args.out}/{release_import.REPORT_FILE}) -> run folder {args.out}")


def _workdir_flag(p, what="run directory (local or gs://)"):
    p.add_argument("--workdir", required=True, help=what)


def _pretrain(args):
    from speechvae_jax.pretrain import hubert

    return _run_exit(hubert.pretrain(_config(args), args.workdir))


def _cache_flags(p):
    p.add_argument("--teacher", required=True, help="a converted or pretrained teacher directory")
    p.add_argument("--data", required=True, help="SOURCE")
    p.add_argument("--split", default=None, help="split (default: all of a folder, else train)")
    p.add_argument("--out", required=True, help="cache directory")


def _cache(args):
    from speechvae_jax.data import sources
    from speechvae_jax.teachers import cache

    split = args.split or ("all" if sources.default_split(args.data) == "all" else "train")
    cache.build_cache(args.teacher, args.data, split, args.out)


def _train(args):
    from speechvae_jax.train import task

    return _run_exit(task.train_and_evaluate(_config(args), args.workdir))


def _export_flags(p):
    _workdir_flag(p, "the trained run (local or gs://)")
    p.add_argument("--data", required=True, help="SOURCE to encode")
    p.add_argument("--out", required=True, help="export directory (shards + manifest.json)")
    p.add_argument("--split", default=None, help="split (default: all of a folder, test of a corpus / TFDS)")
    p.add_argument("--mode", choices=("mean", "sample"), default="mean", help="posterior mean or a sample")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored latent dtype")
    p.add_argument("--shard-size", type=int, default=256, help="utterances per shard (256)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="longer inputs are skipped; long ones are encoded in overlapping windows (600)")


def _export(args):
    from speechvae_jax.data import sources
    from speechvae_jax.export import codec, writer

    split = args.split or sources.default_split(args.data)
    writer.export_latents(args.workdir, args.data, args.out, split=split, mode=args.mode, dtype=args.dtype,
                          shard_size=args.shard_size, buckets=codec.Buckets(max_seconds=args.max_seconds))


def _verify_flags(p):
    p.add_argument("dir", help="an export directory")


def _verify(args):
    from speechvae_jax.export import writer

    writer.verify_export(args.dir)
    print(f"{args.dir}: OK, every shard matches its manifest")


def _decode_flags(p):
    _workdir_flag(p, "the run whose decoder to use")
    p.add_argument("--latents", required=True, help="an export directory")
    p.add_argument("--out", required=True, help="directory for the wav files")
    p.add_argument("--ids", default=None, help="comma-separated utterance ids (default: all)")


def _decode(args):
    from speechvae_jax.export import decode

    paths = decode.decode_latents(args.workdir, args.latents, args.out,
                                  ids=args.ids.split(",") if args.ids else None)
    if not paths:
        raise ValueError(f"{args.latents}: no latents selected to decode")
    print(f"{len(paths)} wav files in {args.out}")


def _evaluate_flags(p):
    _workdir_flag(p, "the run to evaluate")
    p.add_argument("--axes", default="reconstruction,understanding",
                   help="comma-separated axes: reconstruction, understanding, generation")
    p.add_argument("--data", default=None, help="SOURCE (default: the run's config.data.source)")
    p.add_argument("--tts", default=None, help="axis generation: the TTS run trained on this run's latents "
                                               "(default: RUN/tts)")


def _evaluate(args):
    from speechvae_jax.evaluate import markdown, report

    if args.overrides and not args.config:
        raise cli_config.ConfigError("--config.* overrides need --config configs/eval.py[:PRESET]")
    protocol = _config(args) if args.config else None
    result = report.evaluate(args.workdir, protocol, axes=args.axes.split(","), data=args.data,
                             tts=args.tts)
    if result is not None:  # process 0 assembles the report
        print(markdown.format_summary(result))


def _generate_train_flags(p):
    _workdir_flag(p, "the TTS run directory")
    p.add_argument("--latents", required=True,
                   help="export root of a VAE run: one `speechvae export` per split in DIR/<split> (train, valid)")
    p.add_argument("--vae", default=None, help="the VAE run that exported them (default: found above --latents)")


def _generate_train(args):
    from speechvae_jax.generate import trainer

    config = _config(args)
    config.data.latents = args.latents
    if args.vae:
        config.vae.workdir = args.vae
    return _run_exit(trainer.train(config, args.workdir))


def _generate_sample_flags(p):
    _workdir_flag(p, "the trained TTS run")
    p.add_argument("--text", required=True, help="what to say")
    p.add_argument("--prompt", required=True, help="a wav of the voice to speak in")
    p.add_argument("--prompt-text", default=None, help="the prompt's transcript (default: the .txt beside it)")
    p.add_argument("--out", required=True, help="output wav (16-bit, 16 kHz)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    p.add_argument("--nfe", type=int, default=None, help="ODE steps (default: the run's sample.nfe)")
    p.add_argument("--cfg-scale", type=float, default=None, help="guidance scale (default: the run's)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")


def _generate_sample(args):
    from speechvae_jax.generate import synthesis

    out = synthesis.synthesize(args.workdir, args.text, args.prompt, args.out, prompt_text=args.prompt_text,
                               step=args.step, seed=args.seed, nfe=args.nfe, cfg_scale=args.cfg_scale)
    print(f"{out['path']}: {out['seconds']:.2f} s ({out['frames']} frames), TTS step {out['step']}")


def _study_flags(p):
    _workdir_flag(p, "the study folder (runs/, status/, compare/)")
    p.add_argument("--only", default=None,
                   help="comma-separated run names: handle only these, in this order")
    p.add_argument("--stages", default="train,export,tts,evaluate",
                   help="comma-separated stages to run (train,export,tts,evaluate; tts only in studies that score "
                        "generation), e.g. train on a TPU slice and evaluate elsewhere")
    p.add_argument("--list", action="store_true", help="list the runs of the grid and what each has done")
    p.add_argument("--print-commands", action="store_true",
                   help="print one `speechvae study ... --only NAME` line per run (for a job array)")
    p.add_argument("--submit", default=None, metavar="CMD",
                   help="run CMD with each run's command line as its last argument, e.g. 'sbatch --wrap'")
    p.add_argument("--collect", action="store_true", help="only compare the evaluated runs (STUDY/compare)")
    p.add_argument("--allow-missing", action="store_true", help="with --collect: compare whatever is evaluated")


def _study(args):
    import shlex
    import subprocess

    from speechvae_jax.study import grid, runner

    study = _config(args)
    runs = grid.plan(study)
    stages = tuple(_names(args.stages) or ())
    if args.list:
        for r in runs:
            done = sorted(runner.read_status(args.workdir, r.name))
            print(f"{r.name:36s} {r.role:8s} {r.variant:28s} hw={r.hyper_weight} done: {', '.join(done) or '-'}")
        return 0
    if args.print_commands or args.submit:
        lines = runner.commands(args.config, args.overrides, args.workdir, runner.select(runs, _names(args.only)),
                                stages)
        for line in lines:
            if args.submit:
                subprocess.run([*shlex.split(args.submit), line], check=True)
            else:
                print(line)
        then = runner.commands(args.config, args.overrides, args.workdir, runs[:1])[0].rsplit(" --only ", 1)[0]
        print(f"# when they have finished: {then} --collect", file=sys.stderr)
        return 0
    if args.collect:
        runner.collect(study, args.workdir, allow_missing=args.allow_missing)
        return 0
    try:
        runner.run_study(study, args.workdir, only=_names(args.only), stages=stages)
    except runner.StudyStopped as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


def _names(text: str | None) -> list[str] | None:
    return [n for n in text.split(",") if n] if text else None


def _compare_flags(p):
    p.add_argument("runs", nargs="+", help="evaluated run folders (RUN/eval/report.json)")
    p.add_argument("--out", required=True, help="output folder (compare.md, compare.json, figures)")
    p.add_argument("--names", default=None, help="comma-separated display names (default: folder names)")
    p.add_argument("--axis-weights", default=None, metavar="AXIS=W,...",
                   help="weights of the overall score, e.g. reconstruction=1,understanding=2 (default 1 each)")
    p.add_argument("--sweep", default=None, help="comma-separated names of the runs on a hyper-weight sweep")


def _compare(args):
    from speechvae_jax.study import compare

    weights = {}
    for item in (args.axis_weights or "").split(","):
        if item:
            axis, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--axis-weights {args.axis_weights!r}: expected AXIS=WEIGHT,...")
            weights[axis.strip()] = float(value)
    result = compare.compare(args.runs, args.out, names=_names(args.names),
                             score_config={"axis_weights": weights} if weights else None,
                             sweep=_names(args.sweep) or [])
    header, rows = compare.score_rows(result)
    print("  ".join(header))
    for row in rows:
        print("  ".join(c.strip("*") for c in row))
    print(f"comparison written to {args.out}/compare.md")


GROUPS = {"data": "data sources: check", "teacher": "SSL teachers: convert, pretrain, cache",
          "convert": "weight imports: release (the JMAS-VAE checkpoint)",
          "generate": "text-to-speech on exported latents: train, sample"}
COMMANDS = [
    Command("corpus", "synthesise the built-in multi-voice English corpus (offline, Debian TTS engines)",
            "speechvae corpus --out demo_out/corpus --minutes 60", _corpus_flags, _corpus),
    Command("check", "scan a data source and report unusable items (exit 1 if any)",
            "speechvae data check folder:/data/my_recordings", _check_flags, _check, group="data"),
    Command("convert", "import WavLM / HuBERT / wav2vec2 weights from a local file or directory",
            "speechvae teacher convert /ckpt/wavlm-large /ckpt/wavlm-large-jax", _convert_flags, _convert,
            group="teacher"),
    Command("pretrain", "pretrain the in-house HuBERT-style teacher (resumable run)",
            "speechvae teacher pretrain --config configs/teacher_tiny.py --workdir demo_out/teacher",
            _workdir_flag, _pretrain, takes_config=True, group="teacher"),
    Command("cache", "precompute a teacher's features of a data source for training",
            "speechvae teacher cache --teacher demo_out/teacher/teacher --data corpus:demo_out/corpus "
            "--split train --out demo_out/cache", _cache_flags, _cache, group="teacher"),
    Command("release", "import a released JMAS-VAE checkpoint as a run folder (EMA weights when present)",
            "speechvae convert release jmas_vae.ckpt runs/release", _release_flags, _release, group="convert"),
    Command("train", "train (or resume) a speech VAE",
            "speechvae train --config configs/tiny.py:joint_marginal --workdir runs/tiny", _workdir_flag, _train,
            takes_config=True),
    Command("export", "encode a data source to latents on disk (resumable, multi-process)",
            "speechvae export --workdir runs/tiny --data folder:my_recordings --out runs/tiny/export/mine",
            _export_flags, _export),
    Command("export-verify", "check an export directory against its manifest",
            "speechvae export-verify runs/tiny/export/test", _verify_flags, _verify),
    Command("decode", "decode exported latents back to 16 kHz wav files",
            "speechvae decode --workdir runs/tiny --latents runs/tiny/export/mine --out /tmp/wavs",
            _decode_flags, _decode),
    Command("evaluate", "score a run on reconstruction, understanding and generation (RUN/eval/report.md)",
            "speechvae evaluate --workdir runs/tiny --config configs/eval.py:librispeech "
            "--data folder:/data/LibriSpeech",
            _evaluate_flags, _evaluate, takes_config=True,
            config_help="the evaluation protocol, configs/eval.py[:PRESET] (default: the built-in corpus "
            "protocol); override keys with --config.KEY=VALUE (docs/protocol.md)"),
    Command("train", "train (or resume) a flow-matching TTS on a VAE run's exported latents",
            "speechvae generate train --config configs/tts_tiny.py --latents runs/tiny/export --workdir runs/tiny/tts",
            _generate_train_flags, _generate_train, takes_config=True, group="generate"),
    Command("sample", "say a text in the voice of a prompt wav with a trained TTS run",
            "speechvae generate sample --workdir runs/tiny/tts --text \"Hello there.\" --prompt me.wav --out hi.wav",
            _generate_sample_flags, _generate_sample, group="generate"),
    Command("study", "train, export, evaluate and compare every run of a variant grid (resumable)",
            "speechvae study --config configs/study_tiny.py --workdir study_out", _study_flags, _study,
            takes_config=True),
    Command("compare", "compare evaluated runs: table, overall score, bar charts, trade-off plots",
            "speechvae compare runs/a runs/b --out compare_out", _compare_flags, _compare),
]
