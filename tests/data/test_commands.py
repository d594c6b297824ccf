"""Speech Commands folders (`commands:DIR`): splits from lists or speaker hashes, SUPERB KS labels,
silence clips cut from background noise, balanced selection."""
import collections
import os

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.constants import KEYWORDS, SILENCE_LABEL, UNKNOWN_LABEL
from speechvae_jax.data import audio, commands, sources

WORDS = ("yes", "no", "stop", "bird", "happy")  # two of them are not keywords


def _write_tree(root, speakers=8, lists=True):
    """root/<word>/<spk>_nohash_<k>.wav (0.8 s tones), 2 noise files, and optional lists."""
    rng = np.random.default_rng(0)
    listed = {"valid": [], "test": []}
    for w, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for s in range(speakers):
            for k in range(2):
                t = np.arange(12800) / 16000
                sf.write(root / word / f"spk{s:02d}_nohash_{k}.wav",
                         (0.2 * np.sin(2 * np.pi * (200 + 100 * w) * t)).astype(np.float32), 16000)
                if s == 0:
                    listed["valid"].append(f"{word}/spk{s:02d}_nohash_{k}.wav")
                if s == 1:
                    listed["test"].append(f"{word}/spk{s:02d}_nohash_{k}.wav")
    (root / commands.NOISE_DIR).mkdir()
    sf.write(root / commands.NOISE_DIR / "white.wav", 0.1 * rng.normal(size=16000 * 3).astype(np.float32), 16000)
    sf.write(root / commands.NOISE_DIR / "pink.wav", 0.1 * rng.normal(size=44100 * 2).astype(np.float32), 44100)
    if lists:
        (root / "validation_list.txt").write_text("\n".join(listed["valid"]) + "\n")
        (root / "testing_list.txt").write_text("\n".join(listed["test"]) + "\n")
    return root


def test_lists_decide_splits_and_labels_follow_superb(tmp_path):
    root = _write_tree(tmp_path / "sc")
    spec = f"commands:{root}"
    assert sources.list_splits(spec) == ["train", "valid", "test"]
    split = {s: sources.open_source(spec, s) for s in ("train", "valid", "test")}
    words = {s: [it for it in src.items if it[3] != SILENCE_LABEL] for s, src in split.items()}
    assert len(words["valid"]) == len(words["test"]) == 2 * len(WORDS)
    assert len(words["train"]) == 6 * 2 * len(WORDS)
    assert {it[2] for it in words["valid"]} == {"spk00"} and {it[2] for it in words["test"]} == {"spk01"}
    rec = split["train"][0]
    assert rec["word"] == "bird" and rec["keyword"] == UNKNOWN_LABEL and rec["text"] == "bird"
    assert rec["speaker"] == "spk02" and rec["audio"].dtype == np.float32 and rec["audio"].size == 12800
    labels = collections.Counter(lab["keyword"] for lab in split["train"].labels())
    assert labels == {"yes": 12, "no": 12, "stop": 12, UNKNOWN_LABEL: 24, SILENCE_LABEL: 12}
    assert set(labels) <= set(KEYWORDS) | {UNKNOWN_LABEL, SILENCE_LABEL}


def test_silence_clips_are_one_second_of_noise_from_split_regions(tmp_path):
    root = _write_tree(tmp_path / "sc")
    clips = {}
    for s in ("train", "test"):
        src = sources.open_source(f"commands:{root}", s)
        idx = [i for i, lab in enumerate(src.labels()) if lab["keyword"] == SILENCE_LABEL]
        assert len(idx) == (12 if s == "train" else 2)  # mean count of the keywords present
        recs = [src[i] for i in idx]
        for r in recs:
            assert r["audio"].size == 16000 and r["text"] == "" and 0.05 < r["audio"].std() < 0.2
        clips[s] = {r["id"] for r in recs}
    assert not clips["train"] & clips["test"]
    assert any("pink" in c for c in clips["train"]) and any("white" in c for c in clips["train"])


def test_without_lists_speakers_never_span_splits(tmp_path):
    root = _write_tree(tmp_path / "sc", speakers=40, lists=False)
    spk = {s: {it[2] for it in sources.open_source(f"commands:{root}", s).items if it[2]}
           for s in ("train", "valid", "test")}
    assert spk["train"] and spk["valid"] and spk["test"]
    assert not (spk["train"] & spk["valid"] or spk["train"] & spk["test"] or spk["valid"] & spk["test"])
    assert spk["train"] | spk["valid"] | spk["test"] == {f"spk{s:02d}" for s in range(40)}


def test_silence_folder_replaces_noise_clips(tmp_path):
    root = tmp_path / "sc_test"
    for word in ("_silence_", "_unknown_", "left"):
        (root / word).mkdir(parents=True)
        sf.write(root / word / "a_nohash_0.wav", np.full(16000, 0.01, np.float32), 16000)
    labels = [lab["keyword"] for lab in sources.open_source(f"commands:{root}", "train").labels()]
    assert sorted(labels) == sorted([SILENCE_LABEL, UNKNOWN_LABEL, "left"])


def test_balanced_selection_reads_every_label(tmp_path):
    root = _write_tree(tmp_path / "sc")
    recs, info = sources.read_records(f"commands:{root}", "train", 10, selection="balanced",
                                      balance_by="keyword")
    counts = collections.Counter(r["keyword"] for r in recs)
    assert info["selected"] == 10 and counts == {k: 2 for k in ("yes", "no", "stop", UNKNOWN_LABEL, SILENCE_LABEL)}


def test_select_indices_reference():
    assert sources.select_indices(10, 4).tolist() == [0, 3, 6, 9]
    assert sources.select_indices(10, 4, "first").tolist() == [0, 1, 2, 3]
    assert sources.select_indices(10, None).tolist() == list(range(10))
    r = sources.select_indices(10, 4, "random", seed=1)
    assert r.tolist() == sources.select_indices(10, 4, "random", seed=1).tolist() and len(set(r)) == 4
    groups = ["a"] * 6 + ["b"] * 2 + ["c"] * 2
    assert sources.select_indices(10, 7, "balanced", groups=groups).tolist() == [0, 2, 5, 6, 7, 8, 9]
    assert sources.select_indices(10, 3, "balanced", groups=groups).tolist() == [0, 6, 8]
    with pytest.raises(ValueError, match="selection must be one of"):
        sources.select_indices(10, 3, "best")
    with pytest.raises(ValueError, match="one group label per item"):
        sources.select_indices(10, 3, "balanced")


def test_bad_commands_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        sources.open_source(f"commands:{tmp_path / 'nope'}", "train")
    root = _write_tree(tmp_path / "sc")
    with pytest.raises(KeyError, match="no split 'keywords_train'"):
        sources.open_source(f"commands:{root}", "keywords_train")
    with pytest.raises(ValueError, match="cannot give"):
        sources.read_records(f"commands:{root}", "train", 4, selection="balanced", balance_by="emotion")
    os.remove(root / "yes" / "spk03_nohash_0.wav")
    (root / "yes" / "spk03_nohash_0.wav").write_bytes(b"RIFF....WAVEjunk")
    src = sources.open_source(f"commands:{root}", "train")
    i = next(i for i, it in enumerate(src.items) if it[0].endswith("yes/spk03_nohash_0.wav"))
    with pytest.raises(audio.AudioError, match="spk03_nohash_0"):
        src[i]
