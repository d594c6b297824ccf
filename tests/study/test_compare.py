"""`speechvae compare` on hand-made evaluated runs: files, table, scores, reference rows, figures."""
import json
import os

import numpy as np
import pytest

from speechvae_jax.cli import main
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.study import compare
from tests.study.test_score import report


def make_run(root, name, variant, rep, hyper_weight=None):
    """A run folder with config.json and eval/report.json only (what compare reads)."""
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, "eval"))
    cfg = load_config_file("tiny", variant)
    if hyper_weight is not None:
        cfg.alignment.hyper_weight = hyper_weight
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg.to_dict(), f)
    with open(os.path.join(path, "eval", "report.json"), "w") as f:
        json.dump(rep, f)
    return path


@pytest.fixture
def runs(tmp_path):
    return [make_run(tmp_path, "none", "none", report(0.8, 0.4, 0.6, (0.30, 0.31, 0.29))),
            make_run(tmp_path, "jm_lo", "joint_marginal", report(0.79, 0.41, 0.62, (0.42, 0.43, 0.41)), 0.5),
            make_run(tmp_path, "jm_hi", "joint_marginal", report(0.75, 0.45, 0.7, (0.48, 0.47, 0.49)), 10.0),
            make_run(tmp_path, "ta", "time_axis+adaptive", report(0.78, 0.42, 0.65, (0.40, 0.41, 0.42)))]


def test_compare_writes_table_scores_and_figures(runs, tmp_path):
    out = str(tmp_path / "cmp")
    result = compare.compare(runs, out, sweep=["jm_lo", "jm_hi"])
    for f in ("compare.md", "compare.json", "scores.png", "reconstruction_metrics.png", "understanding_metrics.png",
              "tradeoff_reconstruction_understanding.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    assert not os.path.exists(os.path.join(out, "tradeoff_reconstruction_generation.png"))  # no generation axis
    info = result["runs"]["ta"]["info"]
    assert (info["scheme"], info["weighting"], info["hyper_weight"]) == ("time_axis", "adaptive", 2.5)
    assert result["runs"]["jm_lo"]["info"]["weighting"] == "adaptive"
    assert result["runs"]["none"]["scores"]["axes"]["reconstruction"] == 0.0
    # the stronger alignment trades reconstruction for understanding
    lo, hi = result["runs"]["jm_lo"]["scores"]["axes"], result["runs"]["jm_hi"]["scores"]["axes"]
    assert hi["understanding"] > lo["understanding"] and hi["reconstruction"] < lo["reconstruction"]
    assert result["references"]["understanding"]["phoneme_frame/linear"]["teacher"] == 0.5
    assert result["unscored_axes"] == ["generation"]
    assert sorted(result["ranking"]) == ["jm_hi", "jm_lo", "none", "ta"]
    md = open(os.path.join(out, "compare.md")).read()
    assert "| run | scheme | weighting |" in md and "*teacher*" in md and "*log_mel*" in md
    assert "Ranking over probe seeds [0, 1, 2]" in md
    np.testing.assert_allclose(json.load(open(os.path.join(out, "compare.json")))["runs"]["jm_hi"]["scores"]["overall"],
                               result["runs"]["jm_hi"]["scores"]["overall"])


def test_compare_cli_weights_the_axes(runs, tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert main(["compare", *runs, "--out", out, "--axis-weights", "reconstruction=0,understanding=1"]) == 0
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["ranking"][0] == "jm_hi"            # understanding alone decides
    assert "comparison written" in capsys.readouterr().out
    assert main(["compare", *runs, "--out", out, "--axis-weights", "speed=1"]) == 1
    assert "unknown axis" in capsys.readouterr().err


def test_compare_refuses_unevaluated_runs(tmp_path, capsys):
    path = make_run(tmp_path, "a", "none", report(0.8, 0.4, 0.6, (0.3,) * 3))
    os.remove(os.path.join(path, "eval", "report.json"))
    assert main(["compare", path, "--out", str(tmp_path / "o")]) == 1
    assert "evaluate the run first" in capsys.readouterr().err
