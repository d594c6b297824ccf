"""`speechvae`: per-command help, and errors a user can act on: one line, no traceback, non-zero exit."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.cli import commands, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(capsys, *args):
    """(exit code, stdout, stderr) of `speechvae ARGS` run in this process."""
    try:
        code = main(list(args))
    except SystemExit as e:  # argparse's own usage errors and --help
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("error:"), err
    return lines[-1]


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for spec in commands.COMMANDS:
        assert (spec.group or spec.name) in out
    code, out, _ = run_cli(capsys)
    assert code == 0 and "COMMAND" in out


@pytest.mark.parametrize("argv,flags", [
    (["export", "--help"], ["--workdir", "--data", "--out", "--split", "--mode", "--dtype", "--shard-size"]),
    (["train", "--help"], ["--config", "--workdir", "example:"]),
    (["teacher", "cache", "--help"], ["--teacher", "--data", "--split", "--out"]),
    (["data", "check", "--help"], ["source", "--allow-problems"]),
])
def test_command_help_lists_its_own_flags(capsys, argv, flags):
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    for flag in flags:
        assert flag in out
    assert "--minutes" not in out  # another command's flag


def test_unknown_config_key_suggests_the_closest(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--config", "configs/tiny.py:none", "--workdir", str(tmp_path),
                           "--config.train.num_stepz=5")
    assert code == 2
    assert "did you mean --config.train.num_steps" in _one_error_line(err)


def test_wrong_config_type_names_key_and_type(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--config", "configs/tiny.py:none", "--workdir", str(tmp_path),
                           "--config.train.num_steps=many")
    assert code == 2
    assert "--config.train.num_steps=many: expected a value of type int" in _one_error_line(err)


def test_unknown_variant(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--config", "configs/tiny.py:time_axes", "--workdir", str(tmp_path))
    assert code == 2 and "time_axes" in _one_error_line(err)


def test_missing_or_foreign_run_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "export", "--workdir", str(tmp_path / "nope"), "--data", "folder:" + str(tmp_path),
                           "--out", str(tmp_path / "out"))
    assert code == 1 and "a run directory" in _one_error_line(err)


def test_missing_teacher_file(capsys, tmp_path, tiny_corpus):
    code, _, err = run_cli(capsys, "teacher", "cache", "--teacher", str(tmp_path / "no_teacher"), "--data",
                           tiny_corpus, "--split", "test", "--out", str(tmp_path / "cache"))
    assert code == 1 and "no_teacher" in _one_error_line(err)


def test_unwritable_output_path(capsys):
    code, _, err = run_cli(capsys, "train", "--config", "configs/tiny.py:none", "--workdir", "/proc/speechvae_run")
    assert code == 1 and "cannot write to /proc/speechvae_run" in _one_error_line(err)


def test_empty_selection_names_source_split_and_sizes(capsys, tiny_run, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"take{i}.wav", 0.1 * np.sin(np.arange(8000) / 7.0), 16000)
    code, _, err = run_cli(capsys, "export", "--workdir", tiny_run, "--data", f"folder:{folder}", "--split", "test",
                           "--out", str(tmp_path / "out"))
    line = _one_error_line(err)
    assert code == 1 and "split 'test' selects no utterances" in line and "all=3" in line


def test_a_folder_exports_whole_by_default(capsys, tiny_run, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"take{i}.wav", 0.1 * np.sin(np.arange(8000) / 7.0), 16000)
    code, _, err = run_cli(capsys, "export", "--workdir", tiny_run, "--data", f"folder:{folder}",
                           "--out", str(tmp_path / "out"))
    assert code == 0, err
    from speechvae_jax.export import latent_source

    assert len(latent_source(str(tmp_path / "out"))) == 3


def test_data_check_fails_on_problems_unless_allowed(capsys, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    sf.write(folder / "good.wav", 0.1 * np.sin(np.arange(8000) / 7.0), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really audio")
    code, out, _ = run_cli(capsys, "data", "check", f"folder:{folder}")
    assert code == 1 and "broken.wav" in out
    code, _, _ = run_cli(capsys, "data", "check", f"folder:{folder}", "--allow-problems")
    assert code == 0


def test_console_script_exit_code_and_no_traceback():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-m", "speechvae_jax", "decode", "--workdir", "/nonexistent/run",
                        "--latents", "/nonexistent/lat", "--out", "/tmp/x"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.strip().startswith("error:")


@pytest.mark.parametrize("env_dir", [None, "from_env"])
def test_commands_use_the_persistent_compile_cache(tmp_path, env_dir):
    """The cache is set after the config modules have imported JAX (an environment default set then
    would be ignored): ~/.cache/speechvae_jax/xla, or JAX_COMPILATION_CACHE_DIR when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("SPEECHVAE_CACHE", None)
    env.update(HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    expect = str(tmp_path / ".cache" / "speechvae_jax" / "xla")
    if env_dir:
        env["JAX_COMPILATION_CACHE_DIR"] = expect = str(tmp_path / env_dir)
    code = ("import sys, jax; from speechvae_jax import cli; assert 'jax' in sys.modules; "
            "cli._setup_environment(False); "
            "print(jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expect, "2.0"]


def test_evaluate_protocol_config_is_optional_and_checked(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "evaluate", "--help")
    assert code == 0 and "configs/eval.py[:PRESET]" in out and "--axes" in out
    code, _, err = run_cli(capsys, "evaluate", "--workdir", str(tmp_path), "--config.reconstruction.utterances=3")
    assert code == 2 and "need --config configs/eval.py" in _one_error_line(err)
    code, _, err = run_cli(capsys, "evaluate", "--workdir", str(tmp_path), "--config", "configs/eval.py:librispeech",
                           "--config.reconstruction.utterancez=3")
    assert code == 2 and "did you mean --config.reconstruction.utterances" in _one_error_line(err)
    code, _, err = run_cli(capsys, "evaluate", "--workdir", str(tmp_path), "--config", "configs/eval.py:nope")
    assert code == 2 and "unknown eval preset 'nope'" in _one_error_line(err)


def test_teacher_layer_takes_an_int_a_list_or_average_from_the_command_line():
    from speechvae_jax.cli import config as cli_config

    assert cli_config.load("configs/tiny.py:time_axis", [("teacher.layer", "[3,4]")]).teacher.layer == [3, 4]
    assert cli_config.load("configs/tiny.py", [("teacher.layer", "average")]).teacher.layer == "average"
    assert cli_config.load("configs/paper.py", [("teacher.layer", "12")]).teacher.layer == 12


@pytest.mark.parametrize("variant,expect", [
    ("time_axis+adaptive", ("time_axis", True, False, 2.5)),
    ("joint_marginal+fixed", ("joint_marginal", False, False, 2.5)),
    ("d_axis+shared", ("d_axis", True, True, 2.5)),
    ("semantic_vae", ("time_axis", False, False, 1.0)),
    ("va_vae", ("joint_marginal", True, True, 0.1)),
    ("release", ("joint_marginal", True, False, 2.5)),
])
def test_variants_name_a_weighting_or_a_recipe(variant, expect):
    from speechvae_jax.cli import config as cli_config

    a = cli_config.load(f"configs/tiny.py:{variant}", []).alignment
    assert (a.scheme, a.adaptive, a.shared_weight, a.hyper_weight) == expect


def test_unknown_weighting_is_one_error_line(capsys):
    code, _, err = run_cli(capsys, "train", "--config", "configs/tiny.py:time_axis+learned", "--workdir", "x")
    assert code == 2 and "weighting" in _one_error_line(err)
