"""Phoneme targets for sources that have transcripts but no phonemes (`folder:` LibriSpeech, ...).

Grapheme-to-phoneme conversion with espeak-ng (`corpus.synth.phonemize`: the phoneme events of a
synthesis, so the symbols are the built-in corpus's inventory). Results are cached in one JSON file
per voice and espeak-ng version, `{"key": {...}, "result": {text: "p h o n e m e s"}}`, beside the
run (`RUN/eval/g2p/`); a re-run converts only texts it has not seen. G2P phonemes carry no timings,
so only the CTC probe can use them.
"""
from __future__ import annotations

import json
import os

from absl import logging

from speechvae_jax import fileio
from speechvae_jax.corpus import synth

SOURCE_TAG = "espeak-ng g2p"  # the records' "phonemes_from" for converted transcripts


def cache_path(cache_dir: str, voice: str) -> str:
    return os.path.join(cache_dir, f"espeak-{voice}.json")


def _load(path: str, key: dict) -> dict[str, str]:
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        logging.warning("unreadable G2P cache %s; converting again", path)
        return {}
    return stored.get("result", {}) if stored.get("key") == key else {}


def phonemize_records(records: list[dict], cache_dir: str, voice: str = "en-us") -> dict:
    """Fill "phonemes" (space-separated espeak-ng symbols) of every record that has a "text" but no
    phonemes, in place, and mark it `"phonemes_from": SOURCE_TAG`. Returns {"converted", "cached",
    "voice", "espeak_ng", "records_with_text"}."""
    todo = [r for r in records if not r.get("phonemes") and str(r.get("text", "")).strip()]
    info = {"voice": voice, "converted": 0, "cached": 0, "records_with_text": len(todo)}
    if not todo:
        return info
    key = {"voice": voice, "espeak_ng": synth.espeak_version(), "method": "phoneme events, lower-cased text"}
    info["espeak_ng"] = key["espeak_ng"]
    path = cache_path(cache_dir, voice)
    table = _load(path, key)
    for rec in todo:
        text = " ".join(str(rec["text"]).split())
        if text in table:
            info["cached"] += 1
        else:
            table[text] = " ".join(synth.phonemize(text, voice))
            info["converted"] += 1
        rec["phonemes"], rec["phonemes_from"] = table[text], SOURCE_TAG
    if info["converted"]:
        os.makedirs(cache_dir, exist_ok=True)
        fileio.atomic_write_json(path, {"key": key, "result": table}, sort_keys=True)
    return info
