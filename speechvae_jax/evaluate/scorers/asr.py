"""ASR on audio with `pocketsphinx` (its shipped en-US acoustic model, dictionary and language
model), scored against reference text with `jiwer`.

Text normalisation (both sides): lower case, hyphens to spaces, every character other than a-z,
digits, apostrophe and space removed, whitespace collapsed. Numbers are not spelled out."""
from __future__ import annotations

import re

import numpy as np


def normalize_text(text: str) -> str:
    """The normalisation above."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(text.split())


def transcribe(audio: np.ndarray, sr: int = 16000) -> str:
    """pocketsphinx hypothesis for audio [N] float in [-1, 1] at 16 kHz (int16 PCM, one utterance).
    A fresh decoder each call: a reused one carries its cepstral-mean estimate over, so results
    would depend on the previous utterances."""
    from pocketsphinx import Decoder

    pcm = (np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767).astype(np.int16)
    decoder = Decoder(samprate=sr, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def error_counts(reference: str, hypothesis: str) -> dict:
    """Word and character edit counts after normalisation:
    {"words", "word_errors", "chars", "char_errors"} (counts, so a corpus rate is a ratio of sums)."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        raise ValueError("ASR scoring: reference text is empty after normalisation")
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    return {
        "words": len(ref.split()),
        "word_errors": words.substitutions + words.deletions + words.insertions,
        "chars": len(ref),
        "char_errors": chars.substitutions + chars.deletions + chars.insertions,
    }


def asr_errors(audio: np.ndarray, reference: str, sr: int = 16000) -> dict:
    """Transcribe audio and count errors against reference: error_counts plus {"hypothesis"}."""
    hyp = transcribe(audio, sr)
    return {"hypothesis": hyp, **error_counts(reference, hyp)}
