"""Sampling inputs: an audio prompt followed by the text to speak, on one frame grid (F5-TTS style).

The prompt is a latent record (an exported one, or a wav encoded by the VAE) with its transcript and,
in "aligned" mode, its phoneme frame spans. The target is what to say and for how long:
`target_from_record` (evaluation: the true duration and, aligned, the true timings of a test
utterance) or `target_from_text` (free use: the prompt's speaking rate, and espeak-ng's phonemes and
relative durations in aligned mode). `compose` lays both out: prompt frames [0, P) hold the prompt's
latents, frames [P, P + T) are generated.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from ml_collections import ConfigDict

from speechvae_jax.corpus.synth import Voice, speak_espeak
from speechvae_jax.generate import text as text_lib
from speechvae_jax.generate.data import frame_tokens

PHONEMIZER = Voice("espeak", "en-us")


@dataclasses.dataclass
class Target:
    """What to generate: text units, a frame count and (aligned mode) each phoneme's frame span."""
    units: list[str]
    num_frames: int
    start_frames: np.ndarray | None = None
    end_frames: np.ndarray | None = None


def target_from_record(record: dict, text_cfg: ConfigDict) -> Target:
    """The text, true frame count and (aligned) true phoneme spans of a latent record."""
    units = text_lib.units_of(record, text_cfg.units)
    if text_cfg.mode == "filler":
        return Target(units, int(record["num_frames"]))
    return Target(units, int(record["num_frames"]), np.asarray(record["phoneme_start_frames"]),
                  np.asarray(record["phoneme_end_frames"]))


def espeak_phonemes(sentence: str) -> tuple[list[str], np.ndarray]:
    """espeak-ng's (en-us voice) phonemes of a sentence and their durations in samples [P]."""
    synth = speak_espeak(PHONEMIZER, text_lib.normalize_chars(sentence))
    if not synth.phonemes:
        raise ValueError(f"espeak-ng found no phonemes in {sentence!r}")
    return list(synth.phonemes), np.maximum(synth.ends - synth.starts, 1)


def spread(durations: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame spans (start, end exclusive, int32 [P]) filling num_frames in proportion to durations [P]."""
    edges = np.concatenate([[0.0], np.cumsum(durations, dtype=np.float64)])
    edges = edges / edges[-1] * num_frames
    starts = np.floor(edges[:-1]).astype(np.int32)
    return starts, np.maximum(np.ceil(edges[1:]).astype(np.int32), starts + 1).clip(max=num_frames)


def target_from_text(sentence: str, prompt: dict, text_cfg: ConfigDict) -> Target:
    """A target for free text at the prompt's speaking rate (frames per unit of its transcript).

    Phoneme units come from espeak-ng; in aligned mode the frames are shared out in proportion to
    espeak-ng's own phoneme durations.
    """
    prompt_units = len(text_lib.units_of(prompt, text_cfg.units))
    if text_cfg.units == "chars":
        units = list(text_lib.normalize_chars(sentence))
        return Target(units, text_lib.frames_from_rate(int(prompt["num_frames"]), prompt_units, len(units)))
    units, durations = espeak_phonemes(sentence)
    frames = text_lib.frames_from_rate(int(prompt["num_frames"]), prompt_units, len(units))
    if text_cfg.mode == "filler":
        return Target(units, frames)
    return Target(units, frames, *spread(durations, frames))


def prompt_record(latent: np.ndarray, transcript: str, text_cfg: ConfigDict) -> dict:
    """A latent record for an encoded wav prompt [P, L] and its transcript; with phoneme units, the
    transcript's espeak-ng phonemes spread over the prompt's frames by espeak-ng's durations."""
    record = {"latent": np.asarray(latent, np.float32), "num_frames": int(latent.shape[0]),
              "text": transcript, "phonemes": ""}
    if text_cfg.units == "phonemes":
        units, durations = espeak_phonemes(transcript)
        record["phonemes"] = " ".join(units)
        record["phoneme_start_frames"], record["phoneme_end_frames"] = spread(durations, latent.shape[0])
    return record


def compose(prompt: dict, target: Target, text_cfg: ConfigDict, vocab: text_lib.Vocab,
            stats: tuple[np.ndarray, np.ndarray], num_frames: int | None = None) -> dict:
    """One sampling row of F frames (default: prompt + target): {"cond" float32 [F, L] (normalised
    prompt, zeros after), "prompt_mask" bool [F], "mask" bool [F], "tokens" int32 [F], "span" (P, P+T)}."""
    p, t = int(prompt["num_frames"]), target.num_frames
    total = p + t
    frames = total if num_frames is None else num_frames
    if frames < total:
        raise ValueError(f"prompt ({p}) + target ({t}) frames exceed the row's {frames}")
    mean, std = stats
    out = {"cond": np.zeros((frames, mean.size), np.float32), "prompt_mask": np.zeros(frames, bool),
           "mask": np.zeros(frames, bool), "tokens": np.full(frames, text_lib.FILLER, np.int32),
           "span": (p, total)}
    out["cond"][:p] = (prompt["latent"][:p] - mean) / std
    out["prompt_mask"][:p] = True
    out["mask"][:total] = True
    if text_cfg.mode == "filler":
        sep = [" "] if text_cfg.units == "chars" else []
        ids = vocab.encode(text_lib.units_of(prompt, text_cfg.units) + sep + target.units)
        out["tokens"][:total] = text_lib.filler_tokens(ids, total)
        return out
    prompt_tokens = frame_tokens(prompt, text_cfg, vocab)
    if prompt_tokens is None:
        raise ValueError("the prompt has no phoneme timings matching its phonemes (aligned mode needs them)")
    out["tokens"][:p] = prompt_tokens
    out["tokens"][p:total] = text_lib.aligned_tokens(vocab.encode(target.units), target.start_frames,
                                                     target.end_frames, t)
    return out
