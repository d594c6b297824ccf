"""`speechvae study`: the grid, run configs, commands, and a killed study that resumes without redoing
finished parts (two shrunken tiny runs trained, exported, evaluated and compared for real)."""
import json
import os

import pytest
from ml_collections import ConfigDict

from speechvae_jax.cli import main
from speechvae_jax.presets.alignment import RECIPES
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.study import grid, runner

SHRINK = {"data": {"crop_samples": 4000},
          "loss": {"stft": {"fft_sizes": (512, 128, 32)}},
          "model": {"encoder": {"dilations": (1,)},
                    "decoder": {"resblock_kernel_sizes": (3,), "resblock_dilations": (1,)}}}


def study_config(corpus="corpus:/nonexistent", teacher="/nonexistent", **over) -> ConfigDict:
    c = ConfigDict({
        "base": "tiny", "baseline": True, "schemes": ("time_axis",), "weightings": ("fixed",),
        "hyper_weights": {"fixed": 1.0, "adaptive": 2.5, "shared": 0.1},
        "sweep": {"scheme": "time_axis", "weighting": "fixed", "hyper_weights": ()},
        "recipes": (), "pooling": {"pooling": "device", "pool_items": 2},
        "run": {**SHRINK, "data": {**SHRINK["data"], "source": corpus}, "teacher": {"path": teacher},
                "train": {"num_steps": 4, "checkpoint_every": 2, "batch_size": 8, "disc_start": 4,
                          "sample_every": 1000, "log_every": 1},
                "evals": {"val": {"every": 1000, "batches": 1}}},
        "export": {"splits": ("test",), "mode": "mean", "dtype": "float16"},
        "eval": {"axes": ("reconstruction", "understanding"), "data": "", "reference_run": "",
                 "sizes": {"recon_utterances": 2, "tasks": ("speaker_id",),
                           "probe_utterances": {"train": 24, "valid": 8}}},
        "score": {"axis_weights": {"reconstruction": 1.0, "understanding": 1.0}},
    })
    c.update(over)
    return c


def test_plan_crosses_schemes_with_weightings_and_adds_the_sweep():
    study = study_config(schemes=("joint_marginal", "d_axis"), weightings=("fixed", "adaptive", "shared"),
                         sweep=ConfigDict({"scheme": "joint_marginal", "weighting": "adaptive",
                                           "hyper_weights": (0.5, 2.5, 10.0)}), recipes=RECIPES)
    runs = grid.plan(study)
    names = [r.name for r in runs]
    assert names[0] == "none" and len(names) == 1 + 2 * 3 + 2 + 3
    assert "joint_marginal-adaptive-hw0p5" in names and "joint_marginal-adaptive-hw2p5" not in names
    assert [r.hyper_weight for r in grid.sweep_runs(study, runs)] == [0.5, 2.5, 10.0]
    shared = grid.run_config(study, next(r for r in runs if r.name == "d_axis-shared"))
    a = shared.alignment
    assert (a.scheme, a.adaptive, a.shared_weight, a.hyper_weight, a.pooling, a.pool_items) == \
        ("d_axis", True, True, 0.1, "device", 2)
    assert shared.train.num_steps == 4 and shared.data.crop_samples == 4000
    va = grid.run_config(study, next(r for r in runs if r.name == "recipe-va_vae")).alignment
    assert (va.shared_weight, va.hyper_weight, va.pooling, va.schedule.kind) == (True, 0.1, "utterance", "staged")
    sem = grid.run_config(study, next(r for r in runs if r.name == "recipe-semantic_vae")).alignment
    assert (sem.scheme, sem.adaptive, sem.hyper_weight, sem.projection) == ("time_axis", False, 1.0, "reverse")


def test_bad_study_configs_name_the_problem():
    with pytest.raises(ValueError, match="schemes"):
        grid.plan(study_config(schemes=("cosine",)))
    with pytest.raises(ValueError, match="weightings"):
        grid.plan(study_config(weightings=("learned",)))
    bad = study_config()
    bad.run.train.nonsense = 1
    with pytest.raises(ValueError, match="study.run.train.nonsense"):
        grid.run_config(bad, grid.plan(bad)[0])
    with pytest.raises(ValueError, match="not runs of this study"):
        runner.select(grid.plan(study_config()), ["nope"])
    three = study_config(eval={**study_config().eval.to_dict(), "axes": ("reconstruction", "generation")})
    with pytest.raises(ValueError, match="export.splits must hold train, valid, test.*missing train, valid"):
        runner.run_one(three, "S", grid.plan(three)[0])
    three.export.splits = ("train", "valid", "test")
    with pytest.raises(ValueError, match="needs a `tts` section"):
        runner.run_one(three, "S", grid.plan(three)[0])


@pytest.mark.parametrize("name,variant,runs", [("study_tiny", "", 11), ("study_tiny", "three_axes", 3),
                                                ("study_paper", None, 26)])
def test_shipped_study_configs_build_every_run(name, variant, runs):
    study = load_config_file(name, variant)
    plan = grid.plan(study)
    assert len(plan) == runs
    for spec in plan:
        assert grid.run_config(study, spec).train.num_steps > 0
    if "generation" in study.eval.axes:
        assert runner._scores_generation(study)
        tts = grid.tts_config(study, "RUN/export")
        assert tts.data.latents == "RUN/export" and tts.train.num_steps > 0


def test_print_commands_gives_one_line_per_run(capfd):
    code = main(["study", "--config", "configs/study_tiny.py", "--workdir", "S", "--print-commands",
                 "--config.run.train.num_steps=10"])
    out, err = capfd.readouterr()
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 11
    assert lines[1] == ("speechvae study --config configs/study_tiny.py --workdir S --only joint_marginal-fixed "
                        "--config.run.train.num_steps=10")
    assert "--collect" in err
    code = main(["study", "--config", "configs/study_tiny.py", "--workdir", "S", "--submit", "echo submitted:",
                 "--only", "none,d_axis-fixed", "--stages", "train"])
    out, _ = capfd.readouterr()
    assert code == 0 and out.splitlines() == [
        f"submitted: speechvae study --config configs/study_tiny.py --workdir S --only {n} --stages train"
        for n in ("none", "d_axis-fixed")]


@pytest.mark.slow
def test_killed_study_resumes_without_redoing_finished_parts(tiny_corpus, untrained_run, tmp_path, monkeypatch):
    study = study_config(tiny_corpus, f"{untrained_run}/teacher")
    work = str(tmp_path / "study")
    calls = []
    real_train, real_export, real_eval = runner.train_and_evaluate, runner.writer.export_latents, \
        runner.eval_report.evaluate

    def train(config, path, kill=False):
        calls.append(("train", os.path.basename(path)))
        if kill:  # the first attempt is killed half-way through the second run's training
            config.train.num_steps = 2
            real_train(config, path)
            raise KeyboardInterrupt
        return real_train(config, path)

    def export(path, *a, **k):
        calls.append(("export", os.path.basename(path)))
        return real_export(path, *a, **k)

    def evaluate(path, *a, **k):
        calls.append(("evaluate", os.path.basename(path)))
        return real_eval(path, *a, **k)

    monkeypatch.setattr(runner.writer, "export_latents", export)
    monkeypatch.setattr(runner.eval_report, "evaluate", evaluate)
    monkeypatch.setattr(runner, "train_and_evaluate",
                        lambda c, p: train(c, p, kill=p.endswith("time_axis-fixed")))
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(study, work)
    assert calls == [("train", "none"), ("export", "none"), ("evaluate", "none"), ("train", "time_axis-fixed")]
    assert runner._latest_step(runner.run_dir(work, "time_axis-fixed")) == 2

    calls.clear()
    monkeypatch.setattr(runner, "train_and_evaluate", train)
    result = runner.run_study(study, work)
    assert calls == [("train", "time_axis-fixed"), ("export", "time_axis-fixed"), ("evaluate", "time_axis-fixed")]
    with open(os.path.join(runner.run_dir(work, "time_axis-fixed"), "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f if "loss/total" in line]
    assert steps == [1, 2, 3, 4]                      # resumed at step 2, not retrained
    assert set(result["runs"]) == {"none", "time_axis-fixed"} and result["missing"] == []
    ta = result["runs"]["time_axis-fixed"]
    assert ta["info"]["pooling"] == "-" and ta["info"]["hyper_weight"] == 1.0
    assert ta["scores"]["axes"]["reconstruction"] is not None and "speaker_id/linear" in ta["metrics"]["understanding"]
    assert "teacher" in result["references"]["understanding"]["speaker_id/linear"]   # computed once, by "none"
    assert os.path.exists(os.path.join(work, "compare", "compare.md"))

    calls.clear()                                     # everything finished: nothing is redone
    runner.run_study(study, work)
    assert calls == []


# a TTS small enough to train 2 steps in seconds (tests/generate/test_trainer.py's sizes)
SMALL_TTS = {"model": {"width": 32, "depth": 2, "heads": 2, "text_width": 16, "text_layers": 1,
                       "conv_pos_kernel": 5, "conv_pos_groups": 4},
             "data": {"max_frames": 24}, "optim": {"warmup_steps": 2, "decay_steps": 100},
             "train": {"batch_size": 8, "num_steps": 2, "checkpoint_every": 2, "sample_every": 0, "log_every": 1},
             "evals": {"val": {"every": 2, "batches": 1}}}


@pytest.mark.slow
def test_generation_study_trains_a_tts_on_each_runs_latents(tiny_corpus, untrained_run, tmp_path):
    """With generation among the axes, each run exports train / valid / test and trains the study's TTS
    on them in RUN/tts (resumable like the run itself: done once, then kept; retrained when the VAE's
    step changed)."""
    study = study_config(tiny_corpus, f"{untrained_run}/teacher", baseline=False,
                         export={"splits": ("train", "valid", "test"), "mode": "mean", "dtype": "float16"},
                         tts={"base": "tts_tiny", "run": SMALL_TTS})
    study.eval.axes = ("reconstruction", "understanding", "generation")
    work, spec = str(tmp_path / "study"), grid.plan(study)[0]
    logs = []
    runner.run_one(study, work, spec, logs.append, stages=("train", "export", "tts"))
    tts = os.path.join(runner.run_dir(work, spec.name), "tts")
    assert runner._latest_step(tts) == 2
    with open(os.path.join(tts, "config.json")) as f:
        saved = json.load(f)
    assert saved["data"]["latents"] == os.path.join(runner.run_dir(work, spec.name), "export")
    assert saved["vae"]["workdir"] == os.path.abspath(runner.run_dir(work, spec.name))
    assert {"train", "export_train", "export_valid", "export_test", "tts"} <= set(runner.read_status(work, spec.name))
    logs.clear()
    runner.run_one(study, work, spec, logs.append, stages=("train", "export", "tts"))
    assert f"{spec.name}: tts done before (2 steps), kept" in logs

    # A TTS trained on the latents of another VAE step (the VAE trained on since): evaluation refuses
    # it, and the tts stage sets it aside and trains a new one on the current exports.
    status = runner.read_status(work, spec.name)
    assert status["tts"]["inputs"] == {"vae_step": runner._latest_step(runner.run_dir(work, spec.name))}
    status["tts"]["inputs"] = {"vae_step": -1}
    with open(runner._status_path(work, spec.name), "w") as f:
        json.dump(status, f)
    with pytest.raises(ValueError, match="no TTS trained 2 steps on the latents of VAE step"):
        runner.run_one(study, work, spec, logs.append, stages=("evaluate",))
    runner.run_one(study, work, spec, logs.append, stages=("tts",))
    assert os.path.isdir(tts + ".stale-1") and runner._latest_step(tts) == 2
    assert any("moved to" in line and "training afresh" in line for line in logs)
    assert runner.read_status(work, spec.name)["tts"]["inputs"]["vae_step"] >= 0

