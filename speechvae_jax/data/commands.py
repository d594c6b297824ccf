"""Speech Commands folders (`commands:DIR`) labelled with the SUPERB keyword-spotting set.

Layout (Speech Commands v0.01 / v0.02 and their test archives): one sub-folder per spoken word
(`DIR/<word>/<speaker>_nohash_<n>.wav`), `DIR/_background_noise_/*.wav` (long noise recordings),
and optionally `validation_list.txt` / `testing_list.txt` (paths relative to DIR, one a line).
Test archives may hold `_silence_` and `_unknown_` folders instead of noise recordings.

Splits "train", "valid", "test": from the lists when present (everything listed in neither is
train), otherwise a stable hash of the speaker (10 % valid, 10 % test, so a speaker never spans
splits). Labels (`constants.KEYWORDS` + unknown + silence): a folder named after one of the ten
words keeps its name, `_silence_` is silence, every other word is unknown. Without a `_silence_`
folder, each split gets silence clips of 1 s cut from the noise recordings, as many as the mean
count of the keywords present in that split, spread evenly over the split's own part of every
noise recording (train the first 80 %, valid the next 10 %, test the last 10 %: no test noise is
heard in training). Records: {"id", "audio" float32 [N] 16 kHz, "text" (the word; "" for `_x_` folders),
"phonemes": "", "speaker", "keyword" (label), "word" (folder name), "path"}.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np
import soundfile as sf

from speechvae_jax.constants import KEYWORDS, SILENCE_LABEL, UNKNOWN_LABEL
from speechvae_jax.data import audio as audio_lib
from speechvae_jax.data.base import UtteranceSource

SPLITS = ("train", "valid", "test")
LIST_FILES = {"valid": "validation_list.txt", "test": "testing_list.txt"}
HASH_FRACTIONS = {"valid": 0.10, "test": 0.10}  # the rest is train
NOISE_DIR = "_background_noise_"
NOISE_REGIONS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}  # of each recording
CLIP_SECONDS = 1.0


def keyword_label(word: str) -> str:
    """The SUPERB KS label of a Speech Commands folder name."""
    if word in KEYWORDS:
        return word
    return SILENCE_LABEL if word == SILENCE_LABEL else UNKNOWN_LABEL


def speaker_of(filename: str) -> str:
    """`<speaker>_nohash_<n>.wav` -> speaker (the stem when there is no `_nohash_`)."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    return stem.split("_nohash_")[0]


def hash_split(speaker: str) -> str:
    """The split of a speaker when the folder has no lists (stable across machines)."""
    h = int(hashlib.sha1(speaker.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if h < HASH_FRACTIONS["valid"]:
        return "valid"
    return "test" if h < HASH_FRACTIONS["valid"] + HASH_FRACTIONS["test"] else "train"


def _read_list(path: str) -> set[str]:
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as f:
        return {os.path.normpath(line.strip()) for line in f if line.strip()}


class CommandsSource(UtteranceSource):
    """A Speech-Commands-layout folder; items (path, id, speaker, word, start sample or -1)."""

    def __init__(self, directory: str, split: str, spec: str):
        self.spec, self.split = spec, split
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{spec}: {directory} is not a directory")
        if split not in SPLITS:
            raise KeyError(f"{spec}: no split {split!r}; splits are {list(SPLITS)}")
        self.root = os.path.abspath(directory)
        lists = {s: _read_list(os.path.join(self.root, f)) for s, f in LIST_FILES.items()}
        has_lists = any(lists.values())
        words = sorted(d for d in os.listdir(self.root)
                       if os.path.isdir(os.path.join(self.root, d)) and d != NOISE_DIR and not d.startswith("."))
        items = []
        for word in words:
            for name in sorted(os.listdir(os.path.join(self.root, word))):
                if not name.lower().endswith(audio_lib.AUDIO_EXTENSIONS):
                    continue
                rel = os.path.join(word, name)
                speaker = speaker_of(name)
                if has_lists:
                    where = next((s for s, listed in lists.items() if rel in listed), "train")
                else:
                    where = hash_split(speaker)
                if where == split:
                    items.append((os.path.join(self.root, rel), os.path.splitext(rel)[0], speaker, word, -1))
        if SILENCE_LABEL not in words:
            per_word = [n for n in (sum(1 for it in items if it[3] == w) for w in KEYWORDS) if n]
            items += self._silence_clips(int(round(np.mean(per_word))) if per_word else 0)
        self.items = items

    def _silence_clips(self, count: int) -> list[tuple]:
        """`count` 1 s clips spread evenly over this split's region of every noise recording."""
        noise_dir = os.path.join(self.root, NOISE_DIR)
        if count <= 0 or not os.path.isdir(noise_dir):
            return []
        lo, hi = NOISE_REGIONS[self.split]
        regions = []  # (path, first start sample, number of start samples)
        for name in sorted(os.listdir(noise_dir)):
            if name.lower().endswith(audio_lib.AUDIO_EXTENSIONS):
                info = sf.info(os.path.join(noise_dir, name))
                starts = info.frames - int(CLIP_SECONDS * info.samplerate) + 1
                a, b = int(lo * starts), int(hi * starts)
                if b > a:
                    regions.append((os.path.join(noise_dir, name), a, b - a))
        total = sum(n for _, _, n in regions)
        clips = []
        for j in range(count if regions else 0):
            pos = int(j / count * total)
            for path, first, n in regions:
                if pos < n:
                    stem = os.path.splitext(os.path.basename(path))[0]
                    clips.append((path, f"{NOISE_DIR}/{stem}@{first + pos}", "", SILENCE_LABEL, first + pos))
                    break
                pos -= n
        return clips

    def __len__(self) -> int:
        return len(self.items)

    def item_name(self, index: int) -> str:
        path, _, _, _, start = self.items[int(index)]
        return path if start < 0 else f"{path}@{start}"

    def labels(self) -> list[dict]:
        return [{"speaker": spk, "keyword": keyword_label(word), "word": word}
                for _, _, spk, word, _ in self.items]

    def __getitem__(self, index: int) -> dict:
        path, uid, speaker, word, start = self.items[int(index)]
        if start < 0:
            audio = audio_lib.load_audio(path)
        else:
            try:
                rate = sf.info(path).samplerate
                x, rate = sf.read(path, start=start, frames=int(CLIP_SECONDS * rate), dtype="float32")
            except (sf.LibsndfileError, RuntimeError, OSError) as e:
                raise audio_lib.AudioError(self.item_name(index), f"undecodable: {e}") from e
            audio = audio_lib.condition(x, rate, self.item_name(index))
        return {"id": uid, "audio": audio, "text": "" if word.startswith("_") else word, "phonemes": "",
                "speaker": speaker, "keyword": keyword_label(word), "word": word, "path": path}
