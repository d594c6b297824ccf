"""The built-in corpus: deterministic multi-speaker English speech from Debian's TTS engines.

`build_corpus(out_dir)` plans speakers and utterances from a seed, synthesises them in worker
processes (`corpus.synth`), and writes a TFDS dataset (`speechvae_corpus`, array_record) under
`out_dir` plus `out_dir/corpus_info.json`. Splits:
  train / valid / test                       sentences; test speakers never appear in train/valid
  keywords_train / keywords_valid / keywords_test   1 s command-word clips (same speaker partition)
Each record: id, audio int16 [N] at 16 kHz, text, phonemes (space-separated espeak-ng symbols),
phoneme_starts / phoneme_ends int32 [P] (16 kHz samples; empty only for silence clips), speaker,
engine, kind ("sentence" | "keyword"), keyword (label or "").
Read it back with `tfds.data_source("speechvae_corpus", split=..., data_dir=out_dir)` or
`data.sources.open_source("corpus:" + out_dir, split)`.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time

import numpy as np
import tensorflow_datasets as tfds
import tqdm

from speechvae_jax import fileio
from speechvae_jax.constants import KEYWORDS, SILENCE_LABEL, UNKNOWN_LABEL
from speechvae_jax.corpus import synth, text
from speechvae_jax.data.sources import CORPUS_NAME as NAME

FORMAT_VERSION = "1.2.0"  # 1.1: festival phones with timings; 1.2: flite too
INFO_FILE = "corpus_info.json"
SENTENCE_SPLITS = ("train", "valid", "test")
KEYWORD_SPLITS = ("keywords_train", "keywords_valid", "keywords_test")
ENGINES = ("espeak", "flite", "festival")
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "house", "tree", "happy", "zero", "one", "three",
                 "seven", "nine", "wow", "learn", "follow", "forward", "visual", "marble", "sheep",
                 "window")
KEYWORD_SAMPLES = synth.SAMPLE_RATE  # 1 s clips

ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                  "en-gb-x-gbclan", "en-gb-x-gbcwmd")
ESPEAK_VARIANTS = ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7",
                   "Andy", "Annie", "belinda", "benjamin", "edward", "linda", "paul", "robert")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
HELD_OUT = ("flite-rms", "festival-ked_diphone")  # non-espeak test speakers
ENGINE_SHARE = {"espeak": 0.70, "flite": 0.18, "festival": 0.12}
CHARS_PER_SECOND = {"espeak": 19.2, "flite": 15.9, "festival": 14.2}  # measured; espeak at 175 wpm


def _voices(minutes: float, engines: tuple[str, ...], rng: np.random.Generator):
    """Speakers: (Voice, is_test) pairs. espeak-ng count grows with the corpus size (6..32)."""
    out = []
    if "espeak" in engines:
        n = int(np.clip(minutes // 2, 6, 32))
        for i in range(n):
            accent = ESPEAK_ACCENTS[(i + i // len(ESPEAK_ACCENTS)) % len(ESPEAK_ACCENTS)]
            variant = ESPEAK_VARIANTS[(i * 7) % len(ESPEAK_VARIANTS)]
            rate = int(rng.integers(140, 215))
            pitch = int(rng.integers(25, 76))
            out.append((synth.Voice("espeak", f"{accent}+{variant}", rate, pitch), i % 4 == 1))
    if "flite" in engines:
        out += [(synth.Voice("flite", v), f"flite-{v}" in HELD_OUT) for v in FLITE_VOICES]
    if "festival" in engines:
        out += [(synth.Voice("festival", v), f"festival-{v}" in HELD_OUT) for v in FESTIVAL_VOICES]
    return out


def _estimate_seconds(voice: synth.Voice, sentence: str) -> float:
    cps = CHARS_PER_SECOND[voice.engine] * (voice.rate / 175.0 if voice.engine == "espeak" else 1)
    return len(sentence) / cps


def plan(minutes: float, seed: int, engines: tuple[str, ...] = ENGINES, keyword_repeats: int = 0):
    """Deterministic plan: speakers and utterance dicts (no audio yet).

    keyword_repeats: takes of each command word per speaker (0 = 1 below 30 minutes, else 2).
    Returns (speakers: list[dict], utterances: list[dict]) with utterance keys
    id, text, speaker, voice (synth.Voice), kind ("sentence" | "keyword"), keyword, split.
    """
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines must be a non-empty subset of {ENGINES}, got {engines}")
    rng = np.random.default_rng(seed)
    voices = _voices(minutes, engines, rng)
    shares = {e: ENGINE_SHARE[e] for e in engines}
    total_share = sum(shares.values())
    per_engine = {e: sum(1 for v, _ in voices if v.engine == e) for e in engines}
    reps = keyword_repeats or (1 if minutes < 30 else 2)
    speakers, utts = [], []
    train_count = kw_train_count = 0
    for voice, is_test in voices:
        sid = voice.speaker_id
        speakers.append({"id": sid, "engine": voice.engine, "voice": voice.name,
                         "rate": voice.rate, "pitch": voice.pitch,
                         "split": "test" if is_test else "train"})
        budget = minutes * 60.0 * shares[voice.engine] / total_share / per_engine[voice.engine]
        spent, n = 0.0, 0
        while spent < budget:
            s = text.sentence(rng)
            spent += _estimate_seconds(voice, s)
            if is_test:
                split = "test"
            else:
                split = "valid" if train_count % 10 == 9 else "train"
                train_count += 1
            utts.append({"id": f"{sid}-s{n:04d}", "text": s, "speaker": sid, "voice": voice,
                         "kind": "sentence", "keyword": "", "split": split})
            n += 1
        words = [(w, w) for w in KEYWORDS for _ in range(reps)]
        words += [(UNKNOWN_WORDS[int(i)], UNKNOWN_LABEL)
                  for i in rng.choice(len(UNKNOWN_WORDS), size=2 * reps, replace=False)]
        words.append(("", SILENCE_LABEL))
        punct = (".", "!", "?")
        for k, (word, label) in enumerate(words):
            if is_test:
                split = "keywords_test"
            else:
                split = "keywords_valid" if kw_train_count % 8 == 7 else "keywords_train"
                kw_train_count += 1
            utts.append({"id": f"{sid}-k{k:03d}", "text": word + punct[k % 3] if word else "",
                         "speaker": sid, "voice": voice, "kind": "keyword", "keyword": label,
                         "split": split})
    return speakers, utts


def _keyword_clip(s: synth.Synthesis, rng: np.random.Generator) -> synth.Synthesis:
    """Trim silence and place the word at a random offset in a 1 s clip (longer words kept)."""
    a = s.audio
    loud = np.flatnonzero(np.abs(a.astype(np.int32)) > 0.02 * max(1, np.abs(a).max()))
    lo, hi = (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, 0)
    word = a[lo:hi]
    length = max(KEYWORD_SAMPLES, word.size)
    offset = int(rng.integers(0, length - word.size + 1))
    out = np.zeros(length, np.int16)
    out[offset:offset + word.size] = word
    shift = offset - lo
    starts = np.clip(s.starts + shift, 0, length).astype(np.int32)
    ends = np.clip(s.ends + shift, 0, length).astype(np.int32)
    keep = ends > starts
    if s.starts.size:
        return synth.Synthesis(out, [p for p, k in zip(s.phonemes, keep) if k], starts[keep],
                               ends[keep])
    return synth.Synthesis(out, s.phonemes, s.starts, s.ends)


def _silence_clip(rng: np.random.Generator) -> synth.Synthesis:
    """1 s of low-level noise (the keyword task's silence class)."""
    level = 10 ** rng.uniform(-4.0, -2.5)
    x = rng.normal(0.0, level, KEYWORD_SAMPLES) * 32768.0
    empty = np.zeros(0, np.int32)
    return synth.Synthesis(np.clip(np.round(x), -32768, 32767).astype(np.int16), [], empty, empty)


def _jobs(utts: list[dict]) -> list[list]:
    """Deterministic jobs: each a list of (voice, [(uid, text), ...]) segments of similar cost."""
    by_voice: dict = {}
    for u in utts:
        if u["keyword"] != SILENCE_LABEL:
            by_voice.setdefault(u["voice"], []).append((u["id"], u["text"]))
    weight = {"festival": 4.0, "flite": 2.0, "espeak": 1.0}  # relative cost per utterance
    segments = []
    for voice, items in by_voice.items():
        segments += [(voice, items[i:i + 40]) for i in range(0, len(items), 40)]
    cost = lambda seg: weight[seg[0].engine] * len(seg[1])  # noqa: E731
    total = sum(cost(seg) for seg in segments)
    n_jobs = int(min(len(segments), max(4, total // 120)))  # never depends on `workers`
    jobs: list[list] = [[] for _ in range(n_jobs)]
    load = [0.0] * n_jobs
    for seg in sorted(segments, key=lambda sg: -cost(sg)):
        j = int(np.argmin(load))
        jobs[j].append(seg)
        load[j] += cost(seg)
    return [jobs[j] for j in np.argsort(load)[::-1]]


def synthesize_all(utts: list[dict], seed: int, workers: int) -> dict[str, synth.Synthesis]:
    """Audio for every planned utterance, keyed by id (identical for any `workers` >= 1)."""
    jobs = _jobs(utts)
    out: dict[str, synth.Synthesis] = {}
    bar = tqdm.tqdm(total=len(utts), desc="synthesising", unit="utt")
    # libespeak-ng carries state from one utterance to the next (timings drift), so every job
    # runs in a fresh process: its output then depends only on the job, not on scheduling.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(max(1, workers), maxtasksperchild=1) as pool:
        for res in pool.imap_unordered(synth.run_job, jobs):
            out.update(res)
            bar.update(len(res))
    for i, u in enumerate(utts):
        if u["kind"] != "keyword":
            continue
        rng = np.random.default_rng([seed, i])
        if u["keyword"] == SILENCE_LABEL:
            out[u["id"]] = _silence_clip(rng)
            bar.update(1)
        else:
            out[u["id"]] = _keyword_clip(out[u["id"]], rng)
    bar.close()
    return out


class SpeechvaeCorpus(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for the synthesised corpus; audio is int16 [N] at 16 kHz."""

    VERSION = tfds.core.Version(FORMAT_VERSION)
    RELEASE_NOTES = {FORMAT_VERSION: "espeak-ng / flite / festival corpus, keyword subset, "
                                     "phoneme timings for every engine."}

    def __init__(self, *, examples: dict[str, list[dict]] | None = None, **kwargs):
        super().__init__(**kwargs)
        self._examples = examples

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Synthetic multi-speaker English speech (espeak-ng, flite, festival).",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                "text": tfds.features.Text(),
                "phonemes": tfds.features.Text(),
                "phoneme_starts": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "phoneme_ends": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "speaker": tfds.features.Text(),
                "engine": tfds.features.Text(),
                "kind": tfds.features.Text(),
                "keyword": tfds.features.Text(),
            }),
            metadata=tfds.core.MetadataDict(sample_rate=synth.SAMPLE_RATE),
        )

    def _split_generators(self, dl_manager):
        if self._examples is None:
            raise RuntimeError("SpeechvaeCorpus is built by corpus.build_corpus()")
        return {split: self._generate_examples(split) for split in self._examples}

    def _generate_examples(self, split):
        for ex in self._examples[split]:
            yield ex["id"], ex


def _params(minutes, seed, engines, keyword_repeats) -> dict:
    return {"format": FORMAT_VERSION, "minutes": minutes, "seed": seed, "engines": list(engines),
            "keyword_repeats": keyword_repeats}


def corpus_info(out_dir: str) -> dict:
    """The metadata JSON of a built corpus (speakers, phoneme inventory, keywords, durations)."""
    path = os.path.join(os.fspath(out_dir), INFO_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: not a built corpus (run `speechvae corpus`)")
    with open(path) as f:
        return json.load(f)


def _is_complete(out_dir: str, params: dict) -> bool:
    try:
        info = corpus_info(out_dir)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    ds_dir = os.path.join(out_dir, NAME, FORMAT_VERSION)
    return info.get("params") == params and os.path.exists(os.path.join(ds_dir,
                                                                        "dataset_info.json"))


def build_corpus(out_dir: str, minutes: float = 60, seed: int = 0, workers: int = 2, *,
                 engines: tuple[str, ...] = ENGINES, keyword_repeats: int = 0) -> str:
    """Synthesise the corpus into `out_dir` (skipped if already built with these parameters).

    Returns the absolute corpus directory (use it as `corpus:DIR`). Same arguments, same bytes.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    engines = tuple(engines)
    params = _params(minutes, seed, engines, keyword_repeats)
    if _is_complete(out_dir, params):
        logging.info("corpus already built in %s; skipping", out_dir)
        return out_dir
    t0 = time.time()
    os.makedirs(out_dir, exist_ok=True)
    for stale in (INFO_FILE, NAME):
        path = os.path.join(out_dir, stale)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    speakers, utts = plan(minutes, seed, engines, keyword_repeats)
    audio = synthesize_all(utts, seed, workers)
    examples: dict[str, list[dict]] = {s: [] for s in SENTENCE_SPLITS + KEYWORD_SPLITS}
    for u in utts:
        a = audio[u["id"]]
        examples[u["split"]].append({
            "id": u["id"], "audio": a.audio, "text": u["text"], "phonemes": " ".join(a.phonemes),
            "phoneme_starts": a.starts, "phoneme_ends": a.ends, "speaker": u["speaker"],
            "engine": "none" if u["keyword"] == SILENCE_LABEL else u["voice"].engine,
            "kind": u["kind"], "keyword": u["keyword"]})
    empty = [s for s, v in examples.items() if not v]
    if empty:
        raise ValueError(f"corpus of {minutes} minutes leaves splits {empty} empty; "
                         "use more minutes")
    builder = SpeechvaeCorpus(data_dir=out_dir, file_format="array_record", examples=examples)
    builder.download_and_prepare()
    info = _summary(params, speakers, examples)
    fileio.atomic_write_json(os.path.join(out_dir, INFO_FILE), info, sort_keys=True)
    logging.info("corpus built in %.1f s: %s", time.time() - t0, out_dir)
    return out_dir


def _summary(params: dict, speakers: list[dict], examples: dict[str, list[dict]]) -> dict:
    sr = synth.SAMPLE_RATE
    phones = sorted({p for exs in examples.values() for e in exs for p in e["phonemes"].split()})
    words = sorted({w.strip(".,?!").lower() for e in examples["train"] + examples["valid"]
                    + examples["test"] for w in e["text"].split()})
    splits = {}
    for split, exs in examples.items():
        splits[split] = {
            "utterances": len(exs),
            "seconds": round(sum(e["audio"].size for e in exs) / sr, 3),
            "speakers": sorted({e["speaker"] for e in exs}),
            "with_timings": sum(1 for e in exs if e["phoneme_starts"].size),
        }
    return {
        "name": NAME, "version": FORMAT_VERSION, "params": params, "sample_rate": sr,
        "speakers": speakers, "phoneme_inventory": phones,
        "keyword_labels": list(KEYWORDS) + [UNKNOWN_LABEL, SILENCE_LABEL],
        "vocabulary_size": len(text.vocabulary()), "words_used": len(words), "splits": splits,
    }
