import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.generate import prompt as prompt_lib
from speechvae_jax.generate.text import FILLER, SILENCE, Vocab

STATS = (np.zeros(2, np.float32), np.full(2, 0.5, np.float32))


def _cfg(mode, units, symbols):
    return ConfigDict(dict(mode=mode, units=units, symbols=symbols))


def _prompt():
    return {"latent": np.arange(8, dtype=np.float32).reshape(4, 2), "num_frames": 4, "text": "ab",
            "phonemes": "a b", "phoneme_start_frames": np.array([0, 2], np.int32),
            "phoneme_end_frames": np.array([2, 3], np.int32)}


def test_spread():
    starts, ends = prompt_lib.spread(np.array([1, 1, 2]), 8)
    assert starts.tolist() == [0, 2, 4] and ends.tolist() == [2, 4, 8]
    starts, ends = prompt_lib.spread(np.array([10, 1]), 3)          # a short phoneme keeps one frame
    assert starts.tolist() == [0, 2] and ends.tolist() == [3, 3]


def test_compose_filler_chars():
    cfg = _cfg("filler", "chars", list("ab "))
    target = prompt_lib.Target(list("ba"), num_frames=3)
    row = prompt_lib.compose(_prompt(), target, cfg, Vocab(cfg.symbols), STATS, num_frames=9)
    np.testing.assert_allclose(row["cond"][:4], _prompt()["latent"] / 0.5)
    assert np.all(row["cond"][4:] == 0)
    assert row["prompt_mask"].tolist() == [True] * 4 + [False] * 5
    assert row["mask"].tolist() == [True] * 7 + [False] * 2
    assert row["tokens"].tolist() == [3, 4, 5, 4, 3] + [FILLER] * 4   # "ab" + " " + "ba"
    assert row["span"] == (4, 7)
    with pytest.raises(ValueError, match="exceed"):
        prompt_lib.compose(_prompt(), target, cfg, Vocab(cfg.symbols), STATS, num_frames=6)


def test_compose_aligned_uses_both_timings():
    cfg = _cfg("aligned", "phonemes", ["a", "b"])
    target = prompt_lib.target_from_record(
        {"num_frames": 3, "text": "", "phonemes": "b a", "phoneme_start_frames": np.array([1, 2]),
         "phoneme_end_frames": np.array([2, 3])}, cfg)
    row = prompt_lib.compose(_prompt(), target, cfg, Vocab(cfg.symbols), STATS)
    assert row["tokens"].tolist() == [3, 3, 4, SILENCE, SILENCE, 4, 3]
    assert row["mask"].all() and row["span"] == (4, 7)
    no_timings = {k: v for k, v in _prompt().items() if not k.startswith("phoneme_")}
    with pytest.raises(ValueError, match="timings"):
        prompt_lib.compose(no_timings, target, cfg, Vocab(cfg.symbols), STATS)


def test_targets_from_text_follow_the_prompt_rate():
    chars = prompt_lib.target_from_text("Ba  ba!", _prompt(), _cfg("filler", "chars", list("ab! ")))
    assert chars.units == list("ba ba!") and chars.num_frames == 12       # 4 frames / 2 chars
    aligned = _cfg("aligned", "phonemes", ["a"])
    target = prompt_lib.target_from_text("hello world", _prompt(), aligned)
    phones, _ = prompt_lib.espeak_phonemes("hello world")
    assert target.units == phones and len(phones) >= 6
    assert target.num_frames == 2 * len(phones)                         # 4 frames / 2 phonemes
    assert target.start_frames[0] == 0 and target.end_frames[-1] == target.num_frames
    assert np.all(target.end_frames > target.start_frames)
    rec = prompt_lib.prompt_record(np.zeros((30, 2)), "hello world", aligned)
    assert rec["phonemes"].split() == phones and rec["phoneme_end_frames"][-1] == 30
    assert prompt_lib.prompt_record(np.zeros((30, 2)), "hi", _cfg("filler", "chars", ["a"]))["phonemes"] == ""
