"""Real speech for the evaluation tests: short flite sentences, synthesised once per session."""
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

SENTENCES = {
    "kal_a": ("kal16", "Please call me tomorrow morning at nine."),
    "kal_b": ("kal16", "The weather is nice today and the sun is shining."),
    "slt_a": ("slt", "Please call me tomorrow morning at nine."),
    "slt_b": ("slt", "The weather is nice today and the sun is shining."),
}


@pytest.fixture(scope="session")
def flite_speech(tmp_path_factory):
    """{name: (audio float32 [N] at 16 kHz, text)} for the SENTENCES."""
    if shutil.which("flite") is None:
        pytest.fail("flite is not installed (apt-get install flite)")
    out = tmp_path_factory.mktemp("flite")
    speech = {}
    for name, (voice, text) in SENTENCES.items():
        path = out / f"{name}.wav"
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True)
        audio, sr = sf.read(path, dtype="float32")
        assert sr == 16000, (voice, sr)
        speech[name] = (audio, text)
    return speech


def add_noise(audio: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """audio plus white noise at the given SNR (dB)."""
    noise = np.random.default_rng(seed).normal(size=audio.shape)
    noise *= np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)
