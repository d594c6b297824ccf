"""Natural human speech found offline: recordings shipped in Debian packages, gathered into a
`folder:` layout with transcripts, for evaluating on real voices without any download.

Sources (each used when its package is installed):
- `alsa-utils`: /usr/share/sounds/alsa/{Front,Rear,Side}_{Left,Center,Right}.wav, one speaker
  naming the loudspeaker channel ("Front Left"), 48 kHz, about 1.4 s each.
- `asterisk-core-sounds-en-wav` with `asterisk-core-sounds-en` (the transcripts,
  core-sounds-en.txt.gz): about 570 telephone prompts read by one professional speaker (Allison
  Smith), 8 kHz (narrow band: nothing above 4 kHz), 25 minutes. CC-BY-SA 3.0.

`build_natural_folder(out)` writes OUT/<split>/<speaker>/<speaker>_<name>.wav with a `.txt`
transcript beside each file (what `data.sources.FolderSource` reads), split "train" / "test" by a
stable hash of the file name (the ALSA phrases all go to test: a speaker never heard in train), and
OUT/natural_info.json (counts, seconds and package versions per source).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess

import soundfile as sf

from speechvae_jax import fileio

ALSA_DIR = "/usr/share/sounds/alsa"
ASTERISK_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TEXT = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
ALSA_PHRASES = {f"{a}_{b}": f"{a} {b}" for a in ("Front", "Rear", "Side") for b in ("Left", "Center", "Right")}
SPOKEN = {"*": " star ", "#": " pound "}  # what the Asterisk speaker says for the keypad symbols


def _version(package: str) -> str:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def _test_split(name: str, test_fraction: float) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < test_fraction


def asterisk_transcripts(path: str) -> dict[str, str]:
    """Prompt name (relative path without extension) -> transcript, for prompts of speech only
    (bracketed descriptions such as "[beep]" are left out; keypad symbols become words)."""
    out = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            text = text.strip()
            if line.startswith(";") or not sep or not text or text.startswith("["):
                continue
            for symbol, word in SPOKEN.items():
                text = text.replace(symbol, word)
            out[name.strip()] = " ".join(text.split())
    return out


def _copy(src: str, out_dir: str, split: str, speaker: str, name: str, text: str) -> float:
    """Copy one recording and write its transcript; its duration in seconds."""
    folder = os.path.join(out_dir, split, speaker)
    os.makedirs(folder, exist_ok=True)
    stem = f"{speaker}_{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}"
    shutil.copyfile(src, os.path.join(folder, stem + ".wav"))
    fileio.atomic_write_text(os.path.join(folder, stem + ".txt"), text + "\n")
    return sf.info(src).duration


def build_natural_folder(out_dir: str, *, test_fraction: float = 0.1, alsa_dir: str = ALSA_DIR,
                         asterisk_dir: str = ASTERISK_DIR, asterisk_text: str = ASTERISK_TEXT) -> dict:
    """Gather the installed recordings into out_dir (see the module docstring); returns the info
    written to natural_info.json. FileNotFoundError when none of the packages is installed."""
    sources: dict[str, dict] = {}
    counts = {"train": 0, "test": 0}
    alsa = [p for p in ALSA_PHRASES if os.path.exists(os.path.join(alsa_dir, p + ".wav"))]
    if alsa:
        seconds = sum(_copy(os.path.join(alsa_dir, p + ".wav"), out_dir, "test", "alsa", p.lower(), ALSA_PHRASES[p])
                      for p in alsa)
        counts["test"] += len(alsa)
        sources["alsa"] = {"package": "alsa-utils", "version": _version("alsa-utils"), "files": len(alsa),
                           "seconds": seconds, "rate": 48000, "split": "test"}
    if os.path.isdir(asterisk_dir) and os.path.exists(asterisk_text):
        seconds, files = 0.0, 0
        for name, text in sorted(asterisk_transcripts(asterisk_text).items()):
            src = os.path.join(asterisk_dir, name + ".wav")
            if os.path.exists(src):
                split = "test" if _test_split(name, test_fraction) else "train"
                seconds += _copy(src, out_dir, split, "allison", name, text)
                counts[split] += 1
                files += 1
        sources["asterisk"] = {"package": "asterisk-core-sounds-en-wav",
                               "version": _version("asterisk-core-sounds-en-wav"), "files": files,
                               "seconds": seconds, "rate": 8000, "split": f"hash, {test_fraction:.0%} test"}
    if not sources:
        raise FileNotFoundError("no natural speech found: apt-get install alsa-utils "
                                "asterisk-core-sounds-en asterisk-core-sounds-en-wav")
    info = {"sources": sources, "utterances": counts, "speakers": {"alsa": "test only", "allison": "train and test"},
            "layout": "OUT/<split>/<speaker>/<speaker>_<name>.wav + .txt"}
    fileio.atomic_write_json(os.path.join(out_dir, "natural_info.json"), info, sort_keys=True)
    return info
