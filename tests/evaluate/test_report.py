"""`speechvae evaluate` end to end on real small inputs: report files, schema, cache reuse."""
import csv
import json
import os

import numpy as np
import pytest

from speechvae_jax.evaluate import markdown, parts, protocol, report


def _small_config(**recon):
    cfg = protocol.default_eval_config()
    cfg.reconstruction.update(recon)
    for task in cfg.understanding.tasks.values():
        task.steps, task.heads, task.train_utterances, task.test_utterances = 10, ("linear",), 6, 6
    cfg.understanding.seeds = (0, 1)
    return cfg


@pytest.mark.slow
def test_reconstruction_report_schema_chunks_and_reuse(untrained_run):
    cfg = _small_config(utterances=3, chunk_utterances=2, spectrogram_examples=2)
    rep = report.evaluate(untrained_run, cfg, axes=["reconstruction"])
    eval_dir = os.path.join(untrained_run, "eval")
    chunks = sorted(os.listdir(os.path.join(eval_dir, "parts", "reconstruction")))
    assert chunks == ["chunk-00000.json", "chunk-00001.json"]
    for name in ("report.json", "report.md", "spectrograms.png", "reconstruction_bars.png",
                 "reconstruction_per_utterance.csv"):
        assert os.path.exists(os.path.join(eval_dir, name)), name
    with open(os.path.join(eval_dir, "report.json")) as f:
        stored = json.load(f)
    assert stored["run"]["step"] == 0 and stored["run"]["checkpoint_hash"]
    assert stored["settings"]["eval_config"]["reconstruction"]["utterances"] == 3
    assert set(stored["versions"]) >= {"pesq", "pystoi", "speechmos", "resemblyzer", "pocketsphinx", "jax"}
    rec = stored["reconstruction"]
    (name, info), = rec["datasets"].items()
    assert len(rec["ids"]) == 3 == info["selected"] and name.endswith("[test]@3") and rec["chunks"] == 2
    assert [u["id"] for u in rec["per_utterance"]] == rec["ids"]
    summary = rec["summary"]
    for key in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "mel_distance", "mrstft_distance",
                "speaker_sim", "dnsmos_ovrl", "wer", "cer"):
        assert key in summary["recon"] or key in summary["errors"], key
    assert {"dnsmos_ovrl", "wer", "cer"} <= set(summary["ground_truth"])
    with open(os.path.join(eval_dir, "reconstruction_per_utterance.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == rec["ids"] and "stoi" in rows[0] and "gt_dnsmos_ovrl" in rows[0]
    text = markdown.format_summary(rep)
    assert "Reconstruction (3 utterances" in text and "pesq_wb" in text and "ground truth" in text
    paths = [os.path.join(eval_dir, "parts", "reconstruction", c) for c in chunks]
    mtimes = [os.path.getmtime(p) for p in paths]
    again = report.evaluate(untrained_run, cfg, axes=["reconstruction"])
    assert [os.path.getmtime(p) for p in paths] == mtimes
    assert again["reconstruction"]["summary"] == rep["reconstruction"]["summary"]


def test_cached_recomputes_on_key_change(tmp_path):
    calls = []
    path = str(tmp_path / "part.json")
    compute = lambda: calls.append(1) or {"x": len(calls)}  # noqa: E731
    assert parts.cached(path, {"step": 1}, compute) == {"x": 1}
    assert parts.cached(path, {"step": 1}, compute) == {"x": 1} and parts.is_cached(path, {"step": 1})
    assert parts.cached(path, {"step": 2}, compute) == {"x": 2} and not parts.is_cached(path, {"step": 1})
    with open(path, "w") as f:
        f.write("{broken")
    assert parts.cached(path, {"step": 2}, compute) == {"x": 3}


def test_run_parts_shares_work_and_process_zero_fills_gaps(tmp_path):
    done = []

    def part(i):
        return parts.Part(f"p{i}", str(tmp_path / f"p{i}.json"), {"i": i}, lambda: done.append(i) or {"i": i})

    todo = [part(i) for i in range(5)]
    assert parts.run_parts(todo, process_index=1, process_count=2) is None
    assert done == [1, 3]
    got = parts.run_parts(todo, process_index=0, process_count=2)  # computes its own and reads 1, 3
    assert done == [1, 3, 0, 2, 4] and got == {f"p{i}": {"i": i} for i in range(5)}
    os.remove(tmp_path / "p3.json")  # a part another host wrote where this one cannot see it
    assert parts.run_parts(todo, process_index=0, process_count=2)["p3"] == {"i": 3} and done[-1] == 3


def test_unknown_axis_and_bad_config_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown evaluation axes"):
        report.evaluate(str(tmp_path), axes=["synthesis"])
    cfg = protocol.default_eval_config()
    cfg.reconstruction.utterances = 0
    with pytest.raises(ValueError, match="utterances -1 or >= 1"):
        report.evaluate(str(tmp_path), cfg)


@pytest.mark.slow
def test_understanding_report_has_every_task_and_feature_set(untrained_run):
    cfg = _small_config()
    cfg.understanding.tasks.keyword.train = "no_such_split"  # a named skip, decided before any work
    rep = report.evaluate(untrained_run, cfg, axes=["understanding"])
    und = rep["understanding"]
    assert set(und) == set(cfg.understanding.tasks)
    skip = und["keyword"]
    assert all(r["skip"] == "no_data" and "no_such_split" in r["skipped"] for r in skip.values())
    for task in ("phoneme_frame", "phoneme_ctc", "speaker_id"):
        assert set(und[task]) == set(protocol.FEATURE_SETS), task
        for fs, res in und[task].items():
            assert "skipped" not in res, (task, fs, res.get("skipped"))
            h = res["heads"]["linear"]
            assert len(h["runs"]) == 2 and np.isfinite(h["value_mean"]) and h["value_std"] >= 0
        assert len(und[task]["teacher_layers"]["heads"]["linear"]["layer_weights_mean"]) == 3  # 2 layers + input
    assert any(name.endswith("[train]@6") and info["selected"] == 6 for name, info in rep["datasets"].items())
    latents = os.listdir(os.path.join(untrained_run, "eval", "latents"))
    assert sorted({s.split("-")[0] for s in latents}) == ["test", "train", "valid"]
    text = markdown.format_summary(rep)
    assert "phoneme_ctc" in text and "log_mel" in text and "teacher_layers" in text
    assert "skipped keyword/latent [no_data]" in text
    md = open(os.path.join(untrained_run, "eval", "report.md")).read()
    assert "Learned teacher layer weights" in md and "- keyword/log_mel [no_data]" in md
    assert os.path.exists(os.path.join(untrained_run, "eval", "understanding_bars.png"))
