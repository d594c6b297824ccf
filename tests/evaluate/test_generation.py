"""The generation axis: pairing, the Frechet distance, row scoring and the report part end to end."""
import json
import os
import shutil

import numpy as np
import pytest

from speechvae_jax.evaluate import generation, markdown, report


def test_pair_up_uses_the_next_utterance_of_the_speaker():
    recs = [{"id": i, "speaker": s} for i, s in zip("abcde", "xyxzx")]
    pairs, alone = generation.pair_up(recs)
    assert [(p["id"], t["id"]) for p, t in pairs] == [("c", "a"), ("e", "c"), ("a", "e")]
    assert alone == ["b", "d"]


def _sqrtm_reference(a, b):
    """Tr (A B)^(1/2) by the eigenvalues of A B (real, non-negative for SPD A, B)."""
    return np.sum(np.sqrt(np.clip(np.real(np.linalg.eigvals(a @ b)), 0, None)))


def test_frechet_distance():
    assert generation.frechet_distance((np.array([1.0]), np.array([[4.0]])),
                                       (np.array([3.0]), np.array([[1.0]]))) == pytest.approx(4.0 + (2 - 1) ** 2)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4000, 5)), rng.normal(size=(3000, 5)) @ rng.normal(size=(5, 5)) + 1.0
    a, b = generation.gaussian(x), generation.gaussian(y)
    want = np.sum((a[0] - b[0]) ** 2) + np.trace(a[1]) + np.trace(b[1]) - 2 * _sqrtm_reference(a[1], b[1])
    assert generation.frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    assert generation.frechet_distance(b, a) == pytest.approx(want, rel=1e-6)
    assert abs(generation.frechet_distance(a, a)) < 1e-8
    with pytest.raises(ValueError, match="frames"):
        generation.gaussian(np.zeros((1, 5)))


def test_summarize_and_failing_scorers():
    rows = [{"scores": {"words": 4, "word_errors": 1, "chars": 20, "char_errors": 2, "speaker_sim": 0.5},
             "errors": {}},
            {"scores": {"words": 6, "word_errors": 4, "chars": 30, "char_errors": 8}, "errors": {"speaker": "x"}}]
    out = generation.summarize(rows)
    assert out["wer"] == pytest.approx(0.5) and out["cer"] == pytest.approx(0.2)
    assert out["speaker_sim"] == 0.5 and out["n_speaker_sim"] == 1 and out["errors"] == {"speaker": 1}
    silent = generation.score_speech(np.zeros(16000, np.float32), "hello", np.zeros(16000, np.float32))
    assert "speaker" in silent["errors"] and silent["scores"]["words"] == 1


@pytest.fixture
def vae_run(untrained_run, tmp_path):
    """A private copy of the untrained run (its eval/ folder is this test's own)."""
    path = str(tmp_path / "vae")
    shutil.copytree(untrained_run, path, ignore=shutil.ignore_patterns("eval", "*.lock"))
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["teacher"]["path"] = os.path.join(path, "teacher")
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


@pytest.mark.slow
def test_generation_report_rows_and_reuse(vae_run, tiny_corpus, tmp_path, monkeypatch):
    from speechvae_jax.export.writer import export_latents
    from speechvae_jax.generate import trainer
    from tests.generate.test_trainer import _config

    latents = tmp_path / "latents"
    export_latents(vae_run, tiny_corpus, str(latents / "valid"), split="valid")
    os.symlink(latents / "valid", latents / "train")           # a few utterances suffice to train one step
    tts = str(tmp_path / "tts")
    trainer.train(_config(str(latents), vae_run, num_steps=1, sample_every=0), tts)
    monkeypatch.setattr(generation, "UTTERANCES", 5)             # 2 pairs (one speaker twice), 3 unpaired
    monkeypatch.setattr(generation, "EXAMPLES", 1)
    rep = report.evaluate(vae_run, axes=["generation"], tts=tts)
    gen = rep["generation"]
    assert len(gen["pairs"]) == 2 and len(gen["unpaired"]) == 3
    for row in generation.ROWS:
        summary = gen["summary"][row]
        for key in ("wer", "cer", "dnsmos_ovrl", "frechet"):
            assert np.isfinite(summary[key]), (row, key)
        assert len(gen["per_utterance"][row]) == 2
    assert gen["summary"]["ground_truth"]["frechet"] == 0.0 and gen["summary"]["tts"]["frechet"] > 0
    (info,) = gen["datasets"].values()
    assert gen["tts"]["step"] == 1 and info["split"] == "test" and info["selected"] == 5
    eval_dir = os.path.join(vae_run, "eval")
    for name in gen["examples"]:
        assert os.path.exists(os.path.join(eval_dir, name)), name
    assert "Generation" in markdown.format_summary(rep)
    with open(os.path.join(eval_dir, "report.json")) as f:
        assert "generation" in json.load(f)
    parts = [os.path.join(eval_dir, "parts", "generation", p) for p in ("reference.json", "tts.json")]
    mtimes = [os.path.getmtime(p) for p in parts]
    again = report.evaluate(vae_run, axes=["generation"], tts=tts)
    assert [os.path.getmtime(p) for p in parts] == mtimes
    assert again["generation"]["summary"] == gen["summary"]
