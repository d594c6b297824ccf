"""Folder and TFDS sources, audio conditioning, and every kind of bad input."""
import os

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.data import audio, pipeline, sources


def _tone(seconds: float, rate: int, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.fixture()
def librispeech(tmp_path):
    """LibriSpeech layout: SPLIT/SPK/CHAPTER/SPK-CHAPTER-NNNN.flac + SPK-CHAPTER.trans.txt."""
    root = tmp_path / "LibriSpeech"
    texts = {}
    for split, speakers in (("train-clean", ("19", "26")), ("test-clean", ("61",))):
        for spk in speakers:
            d = root / split / spk / "198"
            d.mkdir(parents=True)
            lines = []
            for k in range(3):
                uid = f"{spk}-198-{k:04d}"
                rate = 16000 if k else 22050  # one file needs resampling
                sf.write(d / f"{uid}.flac", _tone(0.5 + 0.1 * k, rate, 100 + 50 * k), rate)
                texts[uid] = f"WORD {spk} NUMBER {k}"
                lines.append(f"{uid} {texts[uid]}")
            (d / f"{spk}-198.trans.txt").write_text("\n".join(lines) + "\n")
    return root, texts


def test_folder_source_librispeech_layout(librispeech):
    root, texts = librispeech
    src = sources.open_source(f"folder:{root}", "train-clean")
    assert len(src) == 6
    recs = [src[i] for i in range(len(src))]
    assert [r["id"] for r in recs] == sorted(r["id"] for r in recs)
    for r in recs:
        assert r["text"] == texts[r["id"]]
        assert r["speaker"] == r["id"].split("-")[0]
        assert r["audio"].dtype == np.float32 and r["audio"].ndim == 1
    first = recs[0]  # 19-198-0000 was written at 22.05 kHz for 0.5 s
    assert abs(first["audio"].size - 8000) <= 2
    test = sources.open_source(f"folder:{root}", "test-clean")
    assert {test[i]["speaker"] for i in range(len(test))} == {"61"}
    assert len(sources.open_source(f"folder:{root}", "all")) == 9


def test_folder_source_libritts_layout_and_stereo(tmp_path):
    d = tmp_path / "LibriTTS" / "84" / "121123"
    d.mkdir(parents=True)
    uid = "84_121123_000001_000000"
    sf.write(d / f"{uid}.wav", _tone(0.4, 24000, channels=2), 24000)
    (d / f"{uid}.normalized.txt").write_text("Hello there, world.")
    (d / f"{uid}.original.txt").write_text("Hello there world!")
    rec = sources.open_source(f"folder:{tmp_path / 'LibriTTS'}", "all")[0]
    assert rec["id"] == uid and rec["speaker"] == "84" and rec["text"] == "Hello there, world."
    assert abs(rec["audio"].size - 6400) <= 2
    np.testing.assert_allclose(np.abs(rec["audio"]).max(), 0.3, atol=0.02)


def test_folder_hash_splits_are_disjoint_and_complete(tmp_path):
    for spk in range(12):
        d = tmp_path / f"spk{spk}"
        d.mkdir()
        for k in range(8):
            sf.write(d / f"u{spk}_{k}.wav", np.zeros(160, np.float32) + 0.1, 16000)
    ids = {s: {r[1] for r in sources.open_source(f"folder:{tmp_path}", s).items}
           for s in ("train", "valid", "test")}
    everything = {r[1] for r in sources.open_source(f"folder:{tmp_path}", "all").items}
    assert ids["train"] | ids["valid"] | ids["test"] == everything
    assert not ids["train"] & ids["valid"] and not ids["train"] & ids["test"]
    assert ids["train"]
    spk = lambda uid: uid.split("_")[0]  # noqa: E731
    assert not {spk(u) for u in ids["test"]} & {spk(u) for u in ids["train"]}


def test_tfds_spec_reads_the_corpus(tiny_corpus):
    directory = tiny_corpus.split(":", 1)[1]
    a = sources.open_source(tiny_corpus, "test")
    b = sources.open_source(f"tfds:speechvae_corpus@{directory}", "test")
    assert len(a) == len(b)
    ra, rb = a[0], b[0]
    assert ra["id"] == rb["id"] and ra["speaker"] == rb["speaker"] and ra["text"] == rb["text"]
    np.testing.assert_array_equal(ra["audio"], rb["audio"])
    np.testing.assert_array_equal(ra["phoneme_starts"], rb["phoneme_starts"])


def test_bad_specs_are_clear_errors(tmp_path, tiny_corpus):
    with pytest.raises(ValueError, match="bad data source spec"):
        sources.open_source("nonsense", "train")
    with pytest.raises(ValueError, match="unknown kind"):
        sources.open_source("s3:bucket", "train")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        sources.open_source(f"folder:{tmp_path / 'missing'}", "train")
    with pytest.raises(KeyError, match="no split"):
        sources.open_source(tiny_corpus, "nosuchsplit")
    with pytest.raises(FileNotFoundError, match="cannot open TFDS"):
        sources.open_source(f"tfds:no_such_dataset@{tmp_path}", "train")


def _bad_files(d) -> dict[str, str]:
    """Writes one file per kind of bad input; returns file name -> expected reason prefix."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "corrupt.wav").write_bytes(b"RIFF" + os.urandom(200))
    sf.write(d / "full.wav", _tone(1.0, 16000), 16000, subtype="PCM_16")
    data = (d / "full.wav").read_bytes()
    (d / "truncated.wav").write_bytes(data[: len(data) // 2])
    (d / "full.wav").unlink()
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    x = _tone(0.5, 16000)
    x[100] = np.nan
    sf.write(d / "nan.wav", x, 16000, subtype="FLOAT")
    x = _tone(0.5, 16000)
    x[7] = np.inf
    sf.write(d / "inf.wav", x, 16000, subtype="FLOAT")
    sf.write(d / "oddrate.wav", _tone(1.0, 500), 500)
    (d / "notaudio.mp3").write_text("this is a text file, not audio\n" * 20)
    return {"corrupt.wav": "undecodable", "truncated.wav": "truncated", "empty.wav": "empty",
            "nan.wav": "non-finite", "inf.wav": "non-finite", "oddrate.wav": "bad sample rate",
            "notaudio.mp3": "undecodable"}


def test_each_bad_input_raises_audio_error_naming_the_file(tmp_path):
    expected = _bad_files(tmp_path)
    for name, reason in expected.items():
        with pytest.raises(audio.AudioError) as err:
            audio.load_audio(str(tmp_path / name))
        assert err.value.where == str(tmp_path / name) and name in str(err.value)
        assert err.value.reason.startswith(reason), (name, err.value.reason)
    with pytest.raises(audio.AudioError, match="unreadable"):
        audio.load_audio(str(tmp_path / "gone.wav"))


def test_conditioning_handles_odd_but_valid_input():
    stereo = np.stack([np.full(800, 0.5, np.float32), np.full(800, -0.1, np.float32)], 1)
    np.testing.assert_allclose(audio.condition(stereo, 16000, "x"), 0.2, atol=1e-6)
    ints = np.array([16384, -32768], np.int16)
    np.testing.assert_allclose(audio.condition(ints, 16000, "x"), [0.5, -1.0])
    loud = np.array([2.0, -4.0], np.float32)
    np.testing.assert_allclose(audio.condition(loud, 16000, "x"), [0.5, -1.0])
    y = audio.condition(_tone(1.0, 11025), 11025, "x")
    assert abs(y.size - 16000) <= 2
    np.testing.assert_allclose(np.abs(audio.normalize_audio(_tone(0.1, 16000), "peak")).max(),
                               audio.PEAK_TARGET, rtol=1e-5)
    r = audio.normalize_audio(_tone(0.1, 16000), "rms")
    np.testing.assert_allclose(np.sqrt(np.mean(r.astype(np.float64) ** 2)), audio.RMS_TARGET,
                               rtol=1e-3)
    silent = np.zeros(100, np.float32)
    assert np.array_equal(audio.normalize_audio(silent, "peak"), silent)
    with pytest.raises(ValueError, match="normalize"):
        audio.normalize_audio(silent, "loud")
    with pytest.raises(audio.AudioError, match="bad shape"):
        audio.condition(np.zeros((2, 2, 2)), 16000, "x")


def _mixed_folder(root):
    good = root / "spk1"
    good.mkdir(parents=True)
    for k in range(4):
        sf.write(good / f"good{k}.wav", _tone(0.6, 16000, 200 + 100 * k), 16000)
    sf.write(good / "short.wav", _tone(0.05, 16000), 16000)
    return _bad_files(root / "spk2")


def test_pipelines_skip_bad_files_and_count_them(tmp_path):
    bad = _mixed_folder(tmp_path)
    skips = audio.SkipLog("test")
    batches = list(pipeline.utterance_batches(f"folder:{tmp_path}", split="all", batch_size=2,
                                              bucket_samples=4000, skips=skips))
    ids = sorted(i for b in batches for i in b["ids"])
    assert ids == ["good0", "good1", "good2", "good3", "short"]
    assert len(skips) == len(bad)
    assert sorted(os.path.basename(e.where) for e in skips.errors) == sorted(bad)
    assert skips.counts()["non-finite"] == 2
    assert "7 items skipped" in skips.summary()

    cfg = pipeline.default_data_config()
    cfg.source, cfg.train_split, cfg.crop_samples = f"folder:{tmp_path}", "all", 4000
    ds = pipeline.train_dataset(cfg, global_batch_size=4, seed=0, process_index=0,
                                process_count=1)
    it = iter(ds)
    for _ in range(6):  # 3 epochs of the 4 good items; bad and too-short items never appear
        b = next(it)
        assert b["audio"].shape == (4, 4000) and b["mask"].min() == 1.0
        assert np.all(np.isfinite(b["audio"]))
    assert len(ds.skips) == len(bad) + 1 and ds.skips.counts()["too short"] == 1
    assert sum(ds.skips.repeats.values()) >= 2 * len(ds.skips)  # met again every epoch
