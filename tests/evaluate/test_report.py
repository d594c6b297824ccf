"""`speechvae evaluate` end to end on real small inputs: report files, schema, cache reuse."""
import json
import os

import numpy as np
import pytest

from speechvae_jax.evaluate import report


@pytest.mark.slow
def test_reconstruction_report_schema_and_reuse(untrained_run, monkeypatch):
    monkeypatch.setattr(report, "RECON_UTTERANCES", 2)
    monkeypatch.setattr(report, "SPECTROGRAM_EXAMPLES", 2)
    rep = report.evaluate(untrained_run, axes=["reconstruction"])
    eval_dir = os.path.join(untrained_run, "eval")
    for name in ("report.json", "report.md", "spectrograms.png", "reconstruction_bars.png",
                 "parts/reconstruction.json"):
        assert os.path.exists(os.path.join(eval_dir, name)), name
    with open(os.path.join(eval_dir, "report.json")) as f:
        stored = json.load(f)
    assert stored["run"]["step"] == 0 and stored["run"]["checkpoint_hash"]
    assert set(stored["versions"]) >= {"pesq", "pystoi", "speechmos", "resemblyzer", "pocketsphinx", "jax"}
    rec = stored["reconstruction"]
    assert len(rec["ids"]) == 2 and rec["datasets"]["test"]["selected"] == 2
    summary = rec["summary"]
    for key in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel_distance", "mrstft_distance",
                "speaker_sim", "dnsmos_ovrl", "wer", "cer"):
        assert key in summary["recon"] or key in summary["errors"], key
    assert {"dnsmos_ovrl", "wer", "cer"} <= set(summary["ground_truth"])
    text = report.format_summary(rep)
    assert "Reconstruction" in text and "pesq_wb" in text and "ground truth" in text
    mtime = os.path.getmtime(os.path.join(eval_dir, "parts", "reconstruction.json"))
    again = report.evaluate(untrained_run, axes=["reconstruction"])
    assert os.path.getmtime(os.path.join(eval_dir, "parts", "reconstruction.json")) == mtime
    assert again["reconstruction"]["summary"] == rep["reconstruction"]["summary"]


def test_cached_recomputes_on_key_change(tmp_path):
    calls = []
    path = str(tmp_path / "part.json")
    compute = lambda: calls.append(1) or {"x": len(calls)}  # noqa: E731
    assert report.cached(path, {"step": 1}, compute) == {"x": 1}
    assert report.cached(path, {"step": 1}, compute) == {"x": 1}
    assert report.cached(path, {"step": 2}, compute) == {"x": 2}
    with open(path, "w") as f:
        f.write("{broken")
    assert report.cached(path, {"step": 2}, compute) == {"x": 3}


def test_unknown_axis_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown evaluation axes"):
        report.evaluate(str(tmp_path), axes=["synthesis"])


@pytest.mark.slow
def test_understanding_report_has_every_task_and_feature_set(untrained_run, monkeypatch):
    from speechvae_jax.evaluate import understanding

    small = {name: {**task, "steps": 10, "heads": ("linear",)} for name, task in understanding.TASKS.items()}
    monkeypatch.setattr(understanding, "TASKS", small)
    monkeypatch.setattr(understanding, "SEEDS", (0, 1))
    monkeypatch.setattr(report, "PROBE_UTTERANCES", {s: 6 for s in report.PROBE_UTTERANCES})
    rep = report.evaluate(untrained_run, axes=["understanding"])
    und = rep["understanding"]
    assert set(und) == set(small)
    for task, by_fs in und.items():
        assert set(by_fs) == set(report.FEATURE_SETS), task
        for fs, res in by_fs.items():
            assert "skipped" not in res, (task, fs, res.get("skipped"))
            for head in small[task]["heads"]:
                h = res["heads"][head]
                assert len(h["runs"]) == 2 and np.isfinite(h["value_mean"]) and h["value_std"] >= 0
    assert rep["datasets"]["keywords_train"]["selected"] == 6
    latents = os.listdir(os.path.join(untrained_run, "eval", "latents"))
    assert sorted(s.split("-")[0] for s in latents) == sorted(["train", "valid", "test", "keywords_train",
                                                               "keywords_test"])
    text = report.format_summary(rep)
    assert "phoneme_ctc" in text and "log_mel" in text and "teacher" in text
    assert os.path.exists(os.path.join(untrained_run, "eval", "understanding_bars.png"))


def test_missing_split_is_a_reported_skip(tiny_corpus):
    from speechvae_jax.evaluate import features, understanding

    splits = report._Splits(tiny_corpus)
    spec = {**understanding.TASKS["keyword"], "train": "no_such_split"}
    res = report._run_task("keyword", "log_mel", spec,
                           lambda fs, split: features.log_mel_items(splits.get(split, 4)), splits, 400)
    assert "no_such_split" in res["skipped"] and res["metric"] == "accuracy"
