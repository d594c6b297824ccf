"""The protocol on real-corpus layouts, end to end: a LibriSpeech-layout folder with transcripts
(espeak-ng G2P -> phoneme CTC probe, frame probe a named skip, speaker ID split per speaker), a
Speech-Commands-layout folder (keyword accuracy), utterance counts from the config, two processes,
a missing label set as a named skip."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.corpus import synth
from speechvae_jax.evaluate import markdown, report
from speechvae_jax.presets.run import load_config_file

SENTENCES = ("the cat sat on the mat", "please call me tomorrow morning", "the weather is nice today",
             "a quick brown fox jumps over the lazy dog", "she sells sea shells by the shore",
             "we will meet at the station at noon")
SPEAKERS = {"train-clean-100": {"19": "en-us+m1", "26": "en-us+f2", "32": "en-gb-x-rp+m3"},
            "test-clean": {"61": "en-us+f4", "121": "en-029+m2"}}
WORDS = ("yes", "no", "up", "down", "bird", "tree")
WORD_VOICES = ("en-us+m1", "en-us+f2", "en-gb-x-rp+m3", "en-us+f4", "en-029+m2", "en-us+m4")


def _speak(voice: str, text: str) -> np.ndarray:
    return synth.speak_espeak(synth.Voice("espeak", voice), text).audio.astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def libri_folder(tmp_path_factory):
    """LibriSpeech layout: SPLIT/SPK/CHAPTER/SPK-CHAPTER-NNNN.flac + upper-case .trans.txt."""
    root = tmp_path_factory.mktemp("LibriSpeech")
    for split, speakers in SPEAKERS.items():
        count = 6 if split.startswith("train") else 4
        for spk, voice in speakers.items():
            d = root / split / spk / "100"
            d.mkdir(parents=True)
            lines = []
            for k, text in enumerate(SENTENCES[:count]):
                uid = f"{spk}-100-{k:04d}"
                sf.write(d / f"{uid}.flac", _speak(voice, text), 16000)
                lines.append(f"{uid} {text.upper()}")
            (d / f"{spk}-100.trans.txt").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def commands_folder(tmp_path_factory):
    """Speech Commands layout: WORD/SPEAKER_nohash_0.wav, noise, validation and testing lists."""
    root = tmp_path_factory.mktemp("speech_commands")
    for word in WORDS:
        (root / word).mkdir()
        for s, voice in enumerate(WORD_VOICES):
            audio = _speak(voice, word)[:16000]
            sf.write(root / word / f"s{s}_nohash_0.wav", audio, 16000)
    (root / "_background_noise_").mkdir()
    noise = 0.05 * np.random.default_rng(0).normal(size=16000 * 20).astype(np.float32)
    sf.write(root / "_background_noise_" / "white_noise.wav", noise, 16000)
    (root / "validation_list.txt").write_text("".join(f"{w}/s4_nohash_0.wav\n" for w in WORDS))
    (root / "testing_list.txt").write_text("".join(f"{w}/s5_nohash_0.wav\n" for w in WORDS))
    return str(root)


def _config(commands: str):
    cfg = load_config_file("eval", "librispeech_smoke")
    cfg.understanding.seeds = (0,)
    cfg.understanding.feature_sets = ("latent", "teacher_layers", "log_mel")
    tasks = cfg.understanding.tasks
    tasks.keyword.source = f"commands:{commands}"
    tasks.keyword.update({"train_utterances": -1, "test_utterances": -1, "heads": ("linear",), "steps": 60})
    tasks.speaker_id.update({"train_utterances": -1, "test_fraction": 0.25, "heads": ("linear",), "steps": 60})
    tasks.phoneme_ctc.update({"train_utterances": 12, "test_utterances": 4, "steps": 20,
                              "feature_sets": ("latent", "log_mel")})
    return cfg


@pytest.mark.slow
def test_real_layouts_end_to_end_over_two_processes(untrained_run, libri_folder, commands_folder, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(untrained_run, run, ignore=shutil.ignore_patterns("eval"))
    cfg, data = _config(commands_folder), f"folder:{libri_folder}"
    axes = ["understanding"]  # reconstruction counts and chunks: test_report.py
    assert report.evaluate(run, cfg, axes, data, process_index=1, process_count=2) is None
    parts_dir = os.path.join(run, "eval", "parts")
    first = {os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
             for d, _, fs in os.walk(parts_dir) for f in fs}
    rep = report.evaluate(run, cfg, axes, data, process_index=0, process_count=2)
    after = {os.path.join(d, f) for d, _, fs in os.walk(parts_dir) for f in fs}
    assert first and set(first) < after  # process 1 did a share, process 0 the rest
    assert all(os.path.getmtime(p) == t for p, t in first.items())  # and reused process 1's

    und = rep["understanding"]
    ctc = und["phoneme_ctc"]
    assert set(ctc) == {"latent", "log_mel"}  # a task's own feature sets
    for res in ctc.values():
        assert res["info"]["label_from"] == ["espeak-ng g2p"] and res["info"]["train_items"] == 12
        assert np.isfinite(res["heads"]["mlp"]["value_mean"])
    g2p_info = [i["g2p"] for name, i in rep["datasets"].items() if "train-clean-100" in name]
    assert g2p_info and all(g["records_with_text"] > 0 for g in g2p_info)
    assert all(r["skip"] == "no_timings" for r in und["phoneme_frame"].values())

    sid = und["speaker_id"]["log_mel"]
    assert sid["speaker_split"]["test_items"] == 2 and sid["info"]["classes"] == 2
    assert len(und["speaker_id"]["teacher_layers"]["heads"]["linear"]["layer_weights_mean"]) == 3

    kw = und["keyword"]  # 6 classes: yes, no, up, down, _unknown_ (bird, tree), _silence_ (noise)
    for fs, res in kw.items():
        assert "skipped" not in res, (fs, res)
        assert res["info"]["classes"] == 6 and np.isfinite(res["heads"]["linear"]["value_mean"])
    kw_train = next(i for name, i in rep["datasets"].items() if name.startswith("commands:") and "[train]" in name)
    assert kw_train["selected"] == 4 * len(WORDS) + 4  # 4 train speakers per word + silence clips
    assert rep["settings"]["eval_config"]["understanding"]["tasks"]["keyword"]["source"].startswith("commands:")
    md = open(os.path.join(run, "eval", "report.md")).read()
    assert "phoneme_frame/latent [no_timings]" in md and "| phoneme_ctc | per | mlp |" in md

    cfg.understanding.tasks.keyword.source = ""  # the LibriSpeech folder has no keyword label set
    rep = report.evaluate(run, cfg, axes, data)
    skip = rep["understanding"]["keyword"]["latent"]
    assert skip["skip"] == "no_data" and "commands:DIR" in skip["skipped"]
    assert "skipped keyword/latent [no_data]" in markdown.format_summary(rep)
