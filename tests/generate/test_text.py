import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.generate import text
from speechvae_jax.generate.text import FILLER, SILENCE, UNKNOWN


def test_vocab_and_units():
    vocab = text.Vocab(["a", "b", "c"])
    assert vocab.size == 6
    np.testing.assert_array_equal(vocab.encode(["c", "a", "z"]), [5, 3, UNKNOWN])
    assert vocab.encode([]).shape == (0,)
    rec = {"text": "  Hello,\n World ", "phonemes": "h @ l oU"}
    assert text.units_of(rec, "chars") == list("hello, world")
    assert text.units_of(rec, "phonemes") == ["h", "@", "l", "oU"]
    phones = text.Vocab.from_records([rec, {"text": "", "phonemes": "w 3:"}], "phonemes")
    assert phones.symbols == ("3:", "@", "h", "l", "oU", "w")
    assert text.Vocab.from_records([], "chars").symbols == text.CHARACTERS
    with pytest.raises(ValueError, match="distinct"):
        text.Vocab(["a", "a"])
    with pytest.raises(ValueError, match="text.units"):
        text.units_of(rec, "words")


def test_filler_tokens():
    np.testing.assert_array_equal(text.filler_tokens(np.array([5, 6, 7]), 5), [5, 6, 7, FILLER, FILLER])
    with pytest.raises(ValueError, match="do not fit"):
        text.filler_tokens(np.arange(6), 5)


def test_aligned_tokens():
    out = text.aligned_tokens(np.array([5, 6, 7]), np.array([1, 3, 3]), np.array([3, 4, 9]), 6)
    # frame 0 silent, 1-2 phoneme 5, frame 3 overlapped by 6 then 7 (later wins), 7 runs past T.
    np.testing.assert_array_equal(out, [SILENCE, 5, 5, 7, 7, 7])
    with pytest.raises(ValueError, match="starts"):
        text.aligned_tokens(np.array([5]), np.array([0, 1]), np.array([1, 2]), 4)


def test_frames_from_rate():
    assert text.frames_from_rate(100, 50, 25) == 50
    assert text.frames_from_rate(3, 10, 1) == 1
    with pytest.raises(ValueError, match="transcript"):
        text.frames_from_rate(100, 0, 5)


def test_check_text_config():
    cfg = ConfigDict(dict(mode="aligned", units="phonemes", symbols=["a", "b"]))
    assert text.check_text_config(cfg).size == 5
    for key, value, match in (("mode", "durations", "text.mode"), ("units", "words", "text.units"),
                              ("units", "chars", "needs text.units 'phonemes'"), ("symbols", [], "empty")):
        bad = ConfigDict(cfg.to_dict())
        bad[key] = value
        with pytest.raises(ValueError, match=match):
            text.check_text_config(bad)
