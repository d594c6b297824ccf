"""espeak-ng G2P of transcripts: reference phonemes, the cache beside the run, what it leaves alone."""
import json

from speechvae_jax.corpus import synth
from speechvae_jax.evaluate import g2p


def test_phonemize_reference_and_case():
    assert synth.phonemize("HELLO WORLD") == ["h", "@", "l", "oU", "w", "3:", "l", "d"]
    assert synth.phonemize("Hello, world!") == synth.phonemize("hello world")
    assert synth.phonemize("US") == synth.phonemize("us")  # capitals are not spelled out
    # the symbols are those of an espeak-ng synthesis (the corpus inventory)
    assert synth.phonemize("stop") == synth.speak_espeak(synth.Voice("espeak", "en-us"), "stop").phonemes


def test_records_are_filled_and_cached(tmp_path):
    recs = [{"id": "a", "text": "HELLO WORLD", "phonemes": ""},
            {"id": "b", "text": "hello   world", "phonemes": ""},
            {"id": "c", "text": "", "phonemes": ""},
            {"id": "d", "text": "keep me", "phonemes": "k i: p"}]
    info = g2p.phonemize_records(recs, str(tmp_path), "en-us")
    assert info["converted"] == 2 and info["cached"] == 0 and info["records_with_text"] == 2
    assert recs[0]["phonemes"] == "h @ l oU w 3: l d" and recs[0]["phonemes_from"] == g2p.SOURCE_TAG
    assert recs[2]["phonemes"] == "" and recs[3]["phonemes"] == "k i: p" and "phonemes_from" not in recs[3]
    stored = json.loads((tmp_path / "espeak-en-us.json").read_text())
    assert stored["key"]["voice"] == "en-us" and stored["key"]["espeak_ng"] == synth.espeak_version()
    again = [{"id": "a", "text": "HELLO WORLD", "phonemes": ""}]
    info = g2p.phonemize_records(again, str(tmp_path), "en-us")
    assert info["converted"] == 0 and info["cached"] == 1 and again[0]["phonemes"] == recs[0]["phonemes"]
    (tmp_path / "espeak-en-us.json").write_text("{broken")
    assert g2p.phonemize_records([{"text": "hi", "phonemes": ""}], str(tmp_path))["converted"] == 1
