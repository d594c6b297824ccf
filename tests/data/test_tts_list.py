"""Zero-shot TTS test lists: the LibriSpeech-PC tab format and the Seed-TTS "|" format."""
import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.data import audio, tts_list


@pytest.fixture()
def libri(tmp_path):
    """test-clean/<spk>/<chapter>/<id>.flac for two utterances of speaker 1089."""
    root = tmp_path / "test-clean"
    d = root / "1089" / "134686"
    d.mkdir(parents=True)
    for k, seconds in ((0, 1.0), (1, 0.5)):
        sf.write(d / f"1089-134686-{k:04d}.flac", np.full(int(22050 * seconds), 0.1, np.float32), 22050)
    return root


def test_librispeech_pc_tab_list(libri, tmp_path):
    lst = tmp_path / "cross_sentence.lst"
    lst.write_text("# comment\n"
                   "1089-134686-0001\t0.5\tStuff it into you.\t1089-134686-0000\t1.0\tHe hoped there would be stew.\n"
                   "\n"
                   "1089-134686-0000\t1.0\tHe hoped there would be stew.\t1089-134686-0007\t2.25\tAnd then, nothing!\n")
    entries = tts_list.parse_tts_list(str(lst), str(libri))
    assert [e["id"] for e in entries] == ["1089-134686-0000", "1089-134686-0007"]
    first = entries[0]
    assert first["text"] == "He hoped there would be stew." and first["prompt_text"] == "Stuff it into you."
    assert first["prompt_id"] == "1089-134686-0001" and first["target_seconds"] == 1.0
    assert first["prompt_path"].endswith("1089-134686-0001.flac")
    assert first["reference_path"].endswith("1089-134686-0000.flac")
    assert entries[1]["reference_path"] == ""  # target recording not in the folder
    got = list(tts_list.iter_tts_list(str(lst), str(libri)))
    assert got[0]["prompt_audio"].dtype == np.float32 and abs(got[0]["prompt_audio"].size - 8000) <= 2
    shards = [list(tts_list.iter_tts_list(str(lst), str(libri), process_index=p, process_count=2)) for p in (0, 1)]
    assert [[e["id"] for e in s] for s in shards] == [["1089-134686-0000"], ["1089-134686-0007"]]


def test_seed_tts_pipe_list_and_skips(tmp_path):
    (tmp_path / "prompts").mkdir()
    sf.write(tmp_path / "prompts" / "p1.wav", np.full(16000, 0.1, np.float32), 16000)
    (tmp_path / "prompts" / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    lst = tmp_path / "meta.lst"
    lst.write_text("u1|prompt one|prompts/p1.wav|target one\n"
                   f"u2|prompt two|{tmp_path / 'prompts' / 'bad.wav'}|target two|prompts/u2.wav\n")
    entries = tts_list.parse_tts_list(str(lst))
    assert entries[0]["prompt_id"] == "p1" and entries[0]["target_seconds"] == 0.0
    assert entries[1]["reference_path"] == str(tmp_path / "prompts" / "u2.wav")
    skips = audio.SkipLog("tts list")
    got = list(tts_list.iter_tts_list(str(lst), skips=skips))
    assert [e["id"] for e in got] == ["u1"] and len(skips) == 1 and "bad.wav" in skips.errors[0].where


def test_bad_lists_name_the_line(libri, tmp_path):
    lst = tmp_path / "a.lst"
    lst.write_text("only\ttwo\n")
    with pytest.raises(ValueError, match=r"a.lst:1: expected 6 tab-separated"):
        tts_list.parse_tts_list(str(lst), str(libri))
    lst.write_text("1089-134686-0001\t0.5\tx\t1089-134686-0000\tlong\ty\n")
    with pytest.raises(ValueError, match="durations must be numbers"):
        tts_list.parse_tts_list(str(lst), str(libri))
    with pytest.raises(ValueError, match="needs audio_root"):
        tts_list.parse_tts_list(str(lst))
    lst.write_text("9-9-9\t0.5\tx\t1089-134686-0000\t1.0\ty\n")
    with pytest.raises(FileNotFoundError, match="prompt '9-9-9' not found"):
        tts_list.parse_tts_list(str(lst), str(libri))
    lst.write_text("u1|p|missing.wav|t\n")
    with pytest.raises(FileNotFoundError, match="missing.wav not found"):
        tts_list.parse_tts_list(str(lst))
