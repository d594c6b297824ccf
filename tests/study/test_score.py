"""The overall score on hand-made reports: normalisation direction, anchors, missing metrics, axis
weights, per-seed ranking stability."""
import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.study import score


def report(stoi, mel, wer, phone_seeds, per_seeds=None, *, teacher=(0.5, 0.5, 0.5), log_mel=(0.3, 0.3, 0.3),
           gt_wer=0.2):
    """A report of the evaluate.report schema with the given figures (probe values per seed)."""
    def probe(seeds, metric="accuracy"):
        key = "error_rate" if metric == "per" else "accuracy"
        return {"metric": metric, "heads": {"linear": {"value_mean": float(np.mean(seeds)), "value_std": 0.0,
                                                        "runs": [{key: v} for v in seeds]}}}
    und = {"phoneme_frame": {"latent": probe(phone_seeds), "teacher": probe(teacher), "log_mel": probe(log_mel)}}
    if per_seeds is not None:
        und["phoneme_ctc"] = {"latent": probe(per_seeds, "per"), "teacher": probe((0.4,) * 3, "per"),
                              "log_mel": probe((0.6,) * 3, "per")}
    return {"reconstruction": {"summary": {"recon": {"stoi": stoi, "mel_distance": mel, "wer": wer},
                                           "ground_truth": {"wer": gt_wer}}},
            "understanding": und}


def config(**weights):
    return score.resolve_config({
        "axis_weights": {"reconstruction": 1.0, "understanding": 1.0, "generation": 0.0, **weights},
        "metrics": {"reconstruction": {"stoi": ("higher", "run:none", 1.0), "mel_distance": ("lower", "run:none", 0.0),
                                       "wer": ("lower", "run:none", "ground_truth")},
                    "understanding": {"phoneme_frame/linear": ("higher", "log_mel", "teacher"),
                                      "phoneme_ctc/linear": ("lower", "log_mel", "teacher")}}})


def test_normalisation_is_direction_aware():
    tables = {"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3, 0.3, 0.3))),
              "a": score.metric_table(report(0.9, 0.2, 0.4, (0.4, 0.4, 0.4), per_seeds=(0.5, 0.5, 0.5)))}
    got = score.score_runs(tables, config())
    a = got["runs"]["a"]["metrics"]
    # higher-is-better: (0.9 - 0.8) / (1 - 0.8); lower-is-better: (0.2 - 0.4) / (0 - 0.4) and (0.4 - 0.6) / (0.2 - 0.6)
    np.testing.assert_allclose(a["reconstruction"]["stoi"], 50.0)
    np.testing.assert_allclose(a["reconstruction"]["mel_distance"], 50.0)
    np.testing.assert_allclose(a["reconstruction"]["wer"], 50.0)
    np.testing.assert_allclose(a["understanding"]["phoneme_frame/linear"], 50.0)  # log-mel 0.3, teacher 0.5
    np.testing.assert_allclose(a["understanding"]["phoneme_ctc/linear"], 50.0)    # log-mel 0.6, teacher 0.4
    assert got["runs"]["none"]["axes"]["reconstruction"] == 0.0
    # worse than the zero anchor scores below 0, better than the hundred anchor above 100
    worse = score.score_runs({**tables, "b": score.metric_table(report(0.7, 0.5, 0.2, (0.6,) * 3))}, config())
    b = worse["runs"]["b"]["metrics"]
    assert b["reconstruction"]["stoi"] < 0 and b["reconstruction"]["mel_distance"] < 0
    assert b["reconstruction"]["wer"] > 100 and b["understanding"]["phoneme_frame/linear"] > 100


def test_overall_weights_axes_and_shows_them():
    tables = {"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3,) * 3)),
              "a": score.metric_table(report(0.9, 0.2, 0.4, (0.5,) * 3))}
    even = score.score_runs(tables, config())["runs"]["a"]
    np.testing.assert_allclose(even["axes"]["reconstruction"], 50.0)
    np.testing.assert_allclose(even["axes"]["understanding"], 100.0)
    np.testing.assert_allclose(even["overall"], 75.0)
    tilted = score.score_runs(tables, config(understanding=3.0))["runs"]["a"]
    np.testing.assert_allclose(tilted["overall"], (50.0 + 3 * 100.0) / 4)
    assert score.ranking(score.score_runs(tables, config())) == ["a", "none"]


def test_missing_metrics_and_anchors_are_reported_not_guessed():
    tables = {"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3,) * 3)),
              "a": score.metric_table(report(0.9, 0.2, 0.4, (0.5,) * 3))}
    del tables["a"]["reconstruction"]["mel_distance"]          # one run lacks a metric
    got = score.score_runs(tables, config())
    assert "mel_distance" not in got["runs"]["a"]["metrics"]["reconstruction"]
    np.testing.assert_allclose(got["runs"]["a"]["axes"]["reconstruction"], 50.0)   # mean of the two it has
    # the CTC metric has no anchors in any report: left out, with the reason
    assert "anchor missing" in got["dropped"]["understanding/phoneme_ctc/linear"]
    # without the baseline run the reconstruction anchors are missing: no reconstruction axis at all
    alone = score.score_runs({"a": tables["a"]}, config())
    assert alone["runs"]["a"]["axes"].get("reconstruction") is None
    assert "reconstruction" in alone["unscored_axes"]
    assert alone["runs"]["a"]["overall"] == alone["runs"]["a"]["axes"]["understanding"]
    # a run that lacks a scored axis gets no overall score (never a silently re-weighted one)
    no_und = score.metric_table(report(0.9, 0.2, 0.4, (0.5,) * 3))
    del no_und["understanding"]
    partial = score.score_runs({**tables, "b": no_und}, config())
    assert partial["runs"]["b"]["overall"] is None and partial["runs"]["b"]["missing_axes"] == ["understanding"]
    assert score.ranking(partial)[-1] == "b"


def test_inverted_anchors_drop_the_metric():
    tables = {"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3,) * 3, teacher=(0.2,) * 3))}
    got = score.score_runs(tables, config())
    assert "inverted" in got["dropped"]["understanding/phoneme_frame/linear"]
    assert "phoneme_frame/linear" not in got["runs"]["none"]["metrics"].get("understanding", {})


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="unknown axis"):
        score.resolve_config({"axis_weights": {"speed": 1.0}})
    bad = config()
    bad.metrics.reconstruction.stoi = ("up", "run:none", 1.0)
    with pytest.raises(ValueError, match="direction"):
        score.score_runs({"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3,) * 3))}, bad)
    with pytest.raises(ValueError, match="anchor"):
        score.score_runs({"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3,) * 3))},
                         ConfigDict({"axis_weights": {"reconstruction": 1.0},
                                     "metrics": {"reconstruction": {"stoi": ("higher", "oracle", 1.0)}}}))


def test_ranking_stability_over_probe_seeds():
    # a and b tie on reconstruction; their phoneme probes swap order on seed 2
    tables = {"none": score.metric_table(report(0.8, 0.4, 0.6, (0.3, 0.3, 0.3))),
              "a": score.metric_table(report(0.9, 0.2, 0.4, (0.45, 0.45, 0.35))),
              "b": score.metric_table(report(0.9, 0.2, 0.4, (0.40, 0.40, 0.42)))}
    st = score.ranking_stability(tables, config())
    assert st["seeds"] == [0, 1, 2]
    assert st["rankings"][0][:2] == ["a", "b"] and st["rankings"][2][:2] == ["b", "a"]
    assert st["rank_range"]["a"] == [1, 2] and st["rank_range"]["none"] == [3, 3]
    np.testing.assert_allclose(st["top_agreement"], 2 / 3)
    np.testing.assert_allclose(st["kendall_tau_mean"], (1 + 1 / 3 + 1 / 3) / 3)


def test_generation_axis_reads_the_rows_the_evaluation_writes():
    """The generation summary as evaluate.generation writes it (rows ROWS, the TTS's own row among them)
    is scored between the `none` run and the ground truth."""
    from speechvae_jax.evaluate.generation import ROWS
    assert score.GENERATED_ROW in ROWS

    def gen_report(tts_wer, tts_sim):
        rows = {"ground_truth": {"wer": 0.2, "speaker_sim": 0.9}, "resynthesis": {"wer": 0.5, "speaker_sim": 0.7},
                score.GENERATED_ROW: {"wer": tts_wer, "speaker_sim": tts_sim}}
        return {"generation": {"summary": {row: {**rows[row], "frechet": 1.0, "errors": {}} for row in ROWS}}}

    tables = {"none": score.metric_table(gen_report(1.0, 0.5)), "a": score.metric_table(gen_report(0.6, 0.7))}
    cfg = score.resolve_config({"axis_weights": {"reconstruction": 0.0, "understanding": 0.0, "generation": 1.0},
                                "metrics": {"generation": {"wer": ("lower", "run:none", "ground_truth"),
                                                           "speaker_sim": ("higher", "run:none", "ground_truth")}}})
    got = score.score_runs(tables, cfg)
    assert got["unscored_axes"] == []
    # wer: (0.6 - 1.0) / (0.2 - 1.0); speaker similarity: (0.7 - 0.5) / (0.9 - 0.5)
    np.testing.assert_allclose(got["runs"]["a"]["metrics"]["generation"]["wer"], 50.0)
    np.testing.assert_allclose(got["runs"]["a"]["metrics"]["generation"]["speaker_sim"], 50.0)
    np.testing.assert_allclose(got["runs"]["a"]["overall"], 50.0)
