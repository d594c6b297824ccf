"""Understanding tasks: label extraction, skips, and probes that learn from real log-mel features."""
import numpy as np
import pytest

from speechvae_jax.evaluate import features, understanding


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
    kwargs, info = understanding.probe_inputs(understanding.TASKS["speaker_id"], train, test)
    assert info == {"classes": 2, "train_items": 2, "test_items": 1, "test_items_unknown_label": 1}
    assert kwargs["train_x"].shape == (2, 3, 3) and kwargs["train_mask"].sum() == 5
    res = understanding.run_task("speaker_id", [_item(2, speaker="a")] * 2, test)
    assert "1 classes" in res["skipped"]


def test_ctc_task_tokens_and_frame_task_without_timings():
    train = [_item(5, phonemes="a b a"), _item(5, phonemes="")]
    kwargs, info = understanding.probe_inputs(understanding.TASKS["phoneme_ctc"], train, train[:1])
    assert info["train_items"] == 1 and kwargs["num_tokens"] == 2 and kwargs["train_labels"] == [[0, 1, 0]]
    with pytest.raises(understanding.TaskSkipped, match="timings"):
        understanding.probe_inputs(understanding.TASKS["phoneme_frame"], train, train)


@pytest.mark.slow
def test_log_mel_probes_beat_chance_on_the_tiny_corpus(tiny_corpus):
    recs = {s: features.select_utterances(tiny_corpus, s, 200)[0]
            for s in ("train", "test", "keywords_train", "keywords_test")}
    items = {s: features.log_mel_items(r) for s, r in recs.items()}
    assert all(len(it["x"]) == features.num_frames(r["audio"].size)
               for it, r in zip(sorted(items["test"], key=lambda i: i["id"]),
                                sorted(recs["test"], key=lambda r: r["id"])))
    kw = understanding.run_task("keyword", items["keywords_train"], items["keywords_test"], seeds=(0,))
    lin = kw["heads"]["linear"]["runs"][0]
    assert lin["accuracy"] > 2 * lin["chance"], lin
    ph = understanding.run_task("phoneme_frame", items["train"], items["test"], seeds=(0,))
    lin = ph["heads"]["linear"]["runs"][0]
    assert lin["accuracy"] > 3 * lin["chance"], lin
