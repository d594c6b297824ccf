"""The built-in corpus: determinism, voices, splits, phoneme labels and timings, TFDS round trip."""
import hashlib
import os

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

from speechvae_jax.corpus import build as corpus
from speechvae_jax.corpus import synth, text
from speechvae_jax.data import sources


def _dir(spec: str) -> str:
    return spec.split(":", 1)[1]


def _digest(directory: str) -> dict[str, str]:
    ds_dir = os.path.join(directory, corpus.NAME, corpus.FORMAT_VERSION)
    out = {}
    for name in sorted(os.listdir(ds_dir)):
        if "array_record" in name:
            with open(os.path.join(ds_dir, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(directory, corpus.INFO_FILE), "rb") as f:
        out[corpus.INFO_FILE] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_sentence_generator_is_seeded_and_broad():
    assert text.sentences(3, 20) == text.sentences(3, 20)
    assert text.sentences(3, 20) != text.sentences(4, 20)
    assert len(text.vocabulary()) > 600
    for s in text.sentences(0, 200):
        assert s[0].isupper() and s[-1] in ".?" and '"' not in s
    assert text.plural("cherry") == "cherries" and text.plural("box") == "boxes"
    assert text.plural("day") == "days"


def test_plan_differs_by_seed_and_holds_out_speakers():
    spk0, utts0 = corpus.plan(10, seed=0)
    _, utts1 = corpus.plan(10, seed=1)
    assert [u["text"] for u in utts0] != [u["text"] for u in utts1]
    test_spk = {s["id"] for s in spk0 if s["split"] == "test"}
    assert {"flite-rms", "festival-ked_diphone"} <= test_spk
    for u in utts0:
        assert (u["speaker"] in test_spk) == (u["split"] in ("test", "keywords_test"))


def test_same_seed_same_bytes_any_worker_count(tiny_corpus, tmp_path):
    again = corpus.build_corpus(str(tmp_path / "again"), minutes=2, seed=0, workers=1)
    assert _digest(again) == _digest(_dir(tiny_corpus))


def test_rebuild_is_skipped_when_complete(tiny_corpus):
    directory = _dir(tiny_corpus)
    info_path = os.path.join(directory, corpus.INFO_FILE)
    before = os.stat(info_path).st_mtime_ns
    assert corpus.build_corpus(directory, minutes=2, seed=0, workers=2) == directory
    assert os.stat(info_path).st_mtime_ns == before


def test_voices_and_splits(tiny_corpus):
    info = corpus.corpus_info(_dir(tiny_corpus))
    engines = {s["engine"] for s in info["speakers"]}
    assert engines == {"espeak", "flite", "festival"}
    assert len(info["speakers"]) >= 10
    sp = {k: set(v["speakers"]) for k, v in info["splits"].items()}
    assert sp["test"] and not sp["test"] & (sp["train"] | sp["valid"])
    assert sp["keywords_test"] and not sp["keywords_test"] & (sp["keywords_train"]
                                                             | sp["keywords_valid"])
    assert len(sp["train"]) >= 6 and len(sp["test"]) >= 3
    total = sum(info["splits"][s]["seconds"] for s in corpus.SENTENCE_SPLITS)
    assert 90 < total < 200  # about 2 minutes of sentences
    assert info["keyword_labels"][:10] == list(corpus.KEYWORDS)
    assert len(info["phoneme_inventory"]) >= 35
    for split in ("train", "test"):
        s = info["splits"][split]
        assert s["with_timings"] == s["utterances"]


def test_records_through_tfds_data_source_and_grain(tiny_corpus):
    directory = _dir(tiny_corpus)
    raw = tfds.data_source(corpus.NAME, split="train", data_dir=directory)
    src = sources.open_source(tiny_corpus, "train")
    assert len(raw) == len(src) == corpus.corpus_info(directory)["splits"]["train"]["utterances"]
    rec, r = src[0], raw[0]
    assert rec["id"] == r["id"].decode() and rec["audio"].dtype == np.float32
    np.testing.assert_array_equal(rec["audio"], r["audio"].astype(np.float32) / 32768.0)
    ds = grain.MapDataset.source(src).map(lambda x: (x["id"], x["audio"].size))
    got = [ds[i] for i in range(len(ds))]
    assert len({g[0] for g in got}) == len(src) and all(n > 16000 for _, n in got)


def test_phoneme_labels_and_timings_are_sane(tiny_corpus):
    inventory = set(corpus.corpus_info(_dir(tiny_corpus))["phoneme_inventory"])
    checked = 0
    for split in ("train", "test"):
        src = sources.open_source(tiny_corpus, split)
        for i in range(len(src)):
            rec = src[i]
            phones = rec["phonemes"].split()
            assert phones and set(phones) <= inventory, rec["id"]
            st, en = rec["phoneme_starts"], rec["phoneme_ends"]
            checked += 1
            assert st.size == en.size == len(phones)
            assert np.all(en > st) and np.all(st[1:] >= st[:-1]) and np.all(st[1:] >= en[:-1] - 1)
            assert st[0] >= 0 and en[-1] <= rec["audio"].size
            inside = np.zeros(rec["audio"].size, bool)
            for a, b in zip(st, en):
                inside[a:b] = True
            x = rec["audio"]
            rms_in = np.sqrt(np.mean(x[inside] ** 2))
            rms_out = np.sqrt(np.mean(x[~inside] ** 2)) if (~inside).any() else 0.0
            assert rms_in > 3 * rms_out, rec["id"]
    assert checked >= 30


@pytest.mark.parametrize("voice", [synth.Voice("festival", "kal_diphone"),
                                   synth.Voice("flite", "slt")])
def test_flite_and_festival_phones_map_to_espeak_symbols_with_timings(voice):
    (s,) = synth.synthesize(voice, ["yes."])
    assert s.phonemes == ["j", "E", "s"]
    assert np.all(s.ends > s.starts) and np.all(s.starts[1:] == s.ends[:-1])
    assert s.starts[0] > 0 and s.ends[-1] <= s.audio.size


def test_espeak_timings_match_phoneme_sequence_of_text():
    s = synth.speak_espeak(synth.Voice("espeak", "en-us"), "yes")
    assert s.phonemes == ["j", "E", "s"]
    assert s.starts.tolist() == sorted(s.starts.tolist()) and s.ends[-1] <= s.audio.size


def test_keyword_subset(tiny_corpus):
    src = sources.open_source(tiny_corpus, "keywords_train")
    labels = {}
    for i in range(len(src)):
        rec = src[i]
        assert rec["kind"] == "keyword" and rec["audio"].size >= corpus.KEYWORD_SAMPLES
        labels.setdefault(rec["keyword"], set()).add(rec["speaker"])
        if rec["keyword"] in corpus.KEYWORDS:
            assert rec["text"].rstrip(".!?") == rec["keyword"]
        if rec["keyword"] == corpus.SILENCE_LABEL:
            assert rec["text"] == "" and rec["phonemes"] == ""
            assert np.abs(rec["audio"]).max() < 0.05
    assert set(corpus.KEYWORDS) | {corpus.UNKNOWN_LABEL, corpus.SILENCE_LABEL} == set(labels)
    assert all(len(spk) >= 4 for spk in labels.values())


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus_info.json"):
        corpus.corpus_info(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no built corpus"):
        sources.open_source(f"corpus:{tmp_path}", "train")
    with pytest.raises(ValueError, match="engines"):
        corpus.plan(2, 0, engines=("bogus",))
