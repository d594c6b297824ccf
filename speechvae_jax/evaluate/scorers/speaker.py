"""Speaker similarity: cosine between `resemblyzer` GE2E embeddings (its shipped weights, CPU).

Each waveform goes through resemblyzer's `preprocess_wav` (volume normalisation, VAD trimming)."""
from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _encoder():
    """The VoiceEncoder, loaded once per process (import and load take a few seconds)."""
    from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def speaker_embedding(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Unit-norm embedding [256] of audio [N]."""
    from resemblyzer import preprocess_wav

    wav = preprocess_wav(np.asarray(audio, np.float32), source_sr=sr)
    if len(wav) == 0:
        raise ValueError("speaker similarity: no voiced audio left after VAD trimming")
    return _encoder().embed_utterance(wav)


def speaker_similarity(ref: np.ndarray, est: np.ndarray, sr: int = 16000) -> dict:
    """{"speaker_sim"}: cosine of the two utterance embeddings."""
    a, b = speaker_embedding(ref, sr), speaker_embedding(est, sr)
    return {"speaker_sim": float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))}
