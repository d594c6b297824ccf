"""Understanding tasks: label extraction, skips, and probes that learn from real log-mel features."""
import numpy as np
import pytest

from speechvae_jax.evaluate import features, understanding
from speechvae_jax.evaluate.protocol import default_eval_config

TASKS = default_eval_config().understanding.tasks.to_dict()


def _item(t, **labels):
    return {"x": np.zeros((t, 3), np.float32), "mask": np.ones(t, bool), **labels}


def test_frame_labels_from_sample_timings():
    it = _item(4, phonemes="h @ l", phoneme_starts=np.array([0, 400, 900]),
               phoneme_ends=np.array([400, 800, 1200]))
    assert list(understanding.frame_labels(it)) == ["h", "@", "l", None]
    assert list(understanding.frame_labels(_item(3, phonemes="a b"))) == [None] * 3


def test_utterance_task_drops_unknown_test_labels_and_skips_single_class():
    train = [_item(2, speaker="a"), _item(3, speaker="b")]
    test = [_item(2, speaker="a"), _item(2, speaker="zz")]
    kwargs, info = understanding.probe_inputs(TASKS["speaker_id"], train, test)
    assert info == {"classes": 2, "train_items": 2, "test_items": 1, "test_items_unknown_label": 1}
    assert kwargs["train_x"].shape == (2, 3) and "train_mask" not in kwargs  # pooled per utterance
    res = understanding.run_task("speaker_id", TASKS["speaker_id"], [_item(2, speaker="a")] * 2, test)
    assert "1 classes" in res["skipped"] and res["skip"] == "no_labels" and res["metric"] == "accuracy"


def test_ctc_task_tokens_and_frame_task_without_timings():
    train = [_item(5, phonemes="a b a"), _item(5, phonemes="")]
    kwargs, info = understanding.probe_inputs(TASKS["phoneme_ctc"], train, train[:1])
    assert info["train_items"] == 1 and kwargs["num_tokens"] == 2 and kwargs["train_labels"] == [[0, 1, 0]]
    assert [x.shape for x in kwargs["train_x"]] == [(5, 3)]  # ragged, never padded to the longest
    with pytest.raises(understanding.TaskSkipped, match="max_train_frames=4") as e:
        understanding.probe_inputs({**TASKS["phoneme_ctc"], "max_train_frames": 4}, train, train[:1])
    assert e.value.code == "no_data"
    with pytest.raises(understanding.TaskSkipped, match="timings") as e:
        understanding.probe_inputs(TASKS["phoneme_frame"], train, train)
    assert e.value.code == "no_timings"


def test_labels_are_checked_before_features():
    check = understanding.check_labels
    check(TASKS["speaker_id"], [{"speaker": "a"}])
    check(TASKS["phoneme_ctc"], [{"phonemes": "a b"}])
    check(TASKS["phoneme_frame"], [{"phonemes": "a", "phoneme_starts": np.array([0])}])
    for name, recs, code in (("speaker_id", [{"speaker": ""}], "no_labels"),
                             ("phoneme_ctc", [{"phonemes": "", "text": ""}], "no_labels"),
                             ("phoneme_frame", [{"phonemes": "a b", "phonemes_from": "espeak-ng g2p"}], "no_timings")):
        with pytest.raises(understanding.TaskSkipped) as e:
            check(TASKS[name], recs)
        assert e.value.code == code, name


def test_layered_items_run_the_weighted_probe():
    rng = np.random.default_rng(0)
    items = [{"x": rng.normal(size=(6, 3, 4)).astype(np.float32) + (2.0 * (i % 2)), "mask": np.ones(6, bool),
              "speaker": "ab"[i % 2]} for i in range(20)]
    task = {**TASKS["speaker_id"], "steps": 300, "lr": 1e-2, "heads": ("linear",)}
    res = understanding.run_task("speaker_id", task, items[:14], items[14:], seeds=(0, 1))
    head = res["heads"]["linear"]
    assert len(head["layer_weights_mean"]) == 3 and abs(sum(head["layer_weights_mean"]) - 1) < 1e-5
    assert head["value_mean"] == 1.0


@pytest.mark.slow
def test_log_mel_probes_beat_chance_on_the_tiny_corpus(tiny_corpus):
    recs = {s: features.select_utterances(tiny_corpus, s, 200)[0]
            for s in ("train", "test", "keywords_train", "keywords_test")}
    items = {s: features.log_mel_items(r) for s, r in recs.items()}
    assert all(len(it["x"]) == features.num_frames(r["audio"].size)
               for it, r in zip(sorted(items["test"], key=lambda i: i["id"]),
                                sorted(recs["test"], key=lambda r: r["id"])))
    kw = understanding.run_task("keyword", TASKS["keyword"], items["keywords_train"], items["keywords_test"],
                                seeds=(0,))
    lin = kw["heads"]["linear"]["runs"][0]
    assert lin["accuracy"] > 2 * lin["chance"], lin
    ph = understanding.run_task("phoneme_frame", TASKS["phoneme_frame"], items["train"], items["test"], seeds=(0,))
    lin = ph["heads"]["linear"]["runs"][0]
    assert lin["accuracy"] > 3 * lin["chance"], lin


def test_report_lists_the_utterances_a_probe_left_out():
    from speechvae_jax.evaluate import markdown
    mean = {"num_train": 490.0, "skipped_train": 1.0, "skipped_train_too_long": 4.0}
    rep = {"understanding": {"phoneme_ctc": {"latent": {"heads": {"mlp": {"mean": mean}}},
                                             "log_mel": {"heads": {"mlp": {"mean": {**mean, "skipped_train": 0.0,
                                                                                    "skipped_train_too_long": 0.0}}}}},
                             "keyword": {"latent": {"skipped": "no split", "skip": "no_data"}}}}
    assert markdown.training_skips(rep) == [
        "Training utterances the probes left out:", "",
        "- phoneme_ctc/latent (mlp): 1 with a label longer than their frames, 4 longer than max_train_frames, "
        "of 495", ""]
