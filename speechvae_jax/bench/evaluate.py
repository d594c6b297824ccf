"""Benchmark of the evaluation's cost: seconds per utterance for each reconstruction scorer (on
flite speech with added noise as the "resynthesis") and seconds per seed for each probe kind.

  python -m speechvae_jax.bench.evaluate [--utterances 4]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf

from speechvae_jax.evaluate import probes
from speechvae_jax.evaluate.scorers import asr, dnsmos, pesq_stoi, signal, speaker

SENTENCES = ("Please call me tomorrow morning at nine.",
             "The weather is nice today and the sun is shining.",
             "I would like to go home now.",
             "She sells fresh fruit at the market on Sundays.")


def _speech(n: int) -> list[tuple[np.ndarray, str]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            text = SENTENCES[i % len(SENTENCES)]
            path = os.path.join(tmp, f"{i}.wav")
            subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", path], check=True)
            out.append((sf.read(path, dtype="float32")[0], text))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--utterances", type=int, default=4)
    args = parser.parse_args()
    speech = _speech(args.utterances)
    rng = np.random.default_rng(0)
    scorers = {
        "pesq": lambda a, b, t: pesq_stoi.pesq_scores(a, b),
        "stoi": lambda a, b, t: pesq_stoi.stoi_scores(a, b),
        "si_sdr": lambda a, b, t: signal.si_sdr(a, b),
        "spectral": lambda a, b, t: signal.spectral_distances(a, b),
        "speaker": lambda a, b, t: speaker.speaker_similarity(a, b),
        "dnsmos": lambda a, b, t: dnsmos.dnsmos_scores(b),
        "asr": lambda a, b, t: asr.asr_errors(b, t),
    }
    seconds = sum(len(a) for a, _ in speech) / 16000
    print(f"{len(speech)} flite utterances, {seconds:.1f} s of audio")
    for name, fn in scorers.items():
        a, t = speech[0]
        t0 = time.time()
        fn(a, a + 0.01 * rng.normal(size=a.shape).astype(np.float32), t)
        first = time.time() - t0
        t0 = time.time()
        for a, t in speech:
            fn(a, a + 0.01 * rng.normal(size=a.shape).astype(np.float32), t)
        print(f"scorer {name:9s} first call {first:6.2f} s, then {(time.time() - t0) / len(speech):6.3f} s/utt")
    x = rng.normal(size=(4000, 64)).astype(np.float32)
    y = rng.integers(0, 40, 4000)
    for head in ("linear", "mlp"):
        for seed in (0, 1):
            t0 = time.time()
            probes.train_frame_probe(x, y, x, y, num_classes=40, head=head, steps=1500, seed=seed)
            print(f"frame probe {head:6s} 1500 steps x 256 (seed {seed}): {time.time() - t0:6.2f} s")
    xs = rng.normal(size=(200, 200, 64)).astype(np.float32)
    ms = np.ones((200, 200), np.float32)
    labels = [list(rng.integers(0, 40, 30)) for _ in range(200)]
    for seed in (0, 1):
        t0 = time.time()
        probes.train_ctc_probe(list(xs), list(ms), labels, list(xs[:50]), list(ms[:50]), labels[:50],
                               num_tokens=40, head="mlp", context=2, steps=600, batch_size=8, lr=3e-3, seed=seed)
        print(f"ctc probe mlp 600 steps x 8 x 200 frames (seed {seed}): {time.time() - t0:6.2f} s")


if __name__ == "__main__":
    main()
