"""Benchmark of `speechvae export` throughput (prints figures; no assertions).

  python -m speechvae_jax.bench.export [--seconds S] [--skip-paper]

Encodes about S seconds of espeak-ng speech (sentences of 1 to 6 s, so several length buckets are
used) with the tiny and the paper-scale encoder (random weights: speed does not depend on them) and
writes a full export (shards, summaries, manifest). Prints audio-seconds per wall second for the
first run (which compiles the buckets and measures the receptive field) and for a second, warm run
into a fresh directory, plus the CPU seconds of the process and the 1-minute load average, since the
machine is shared.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.corpus import synth, text
from speechvae_jax.engine.checkpoint import params_hash
from speechvae_jax.export import writer
from speechvae_jax.inference import InferenceModel
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.run import vae_config


def speech(seconds: float, seed: int = 0) -> list[dict]:
    """Standard utterances of espeak-ng speech, about `seconds` in total."""
    voice = synth.Voice("espeak", "en-us", rate=150)
    utts, total, i = [], 0.0, 0
    for sentence in text.sentences(seed, 10_000):
        if total >= seconds:
            break
        s = synth.speak_espeak(voice, sentence)
        audio = s.audio.astype(np.float32) / 32768.0
        utts.append({"id": f"bench-{i:04d}", "audio": audio, "text": sentence, "phonemes": " ".join(s.phonemes),
                     "speaker": voice.speaker_id})
        total += len(audio) / 16000
        i += 1
    return utts


def encoder_model(size: str) -> InferenceModel:
    """A random-weight model with only the encoder initialised (export never decodes)."""
    config = vae_config(size, "none")
    vae = SpeechVAE(config.model)
    init = jax.jit(lambda rng, x: vae.init(rng, x, method=lambda m, a: m.encode_head(m.encode_features(a))))
    params = init(jax.random.PRNGKey(0), jnp.zeros((1, 800)))["params"]
    n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
    print(f"{size}: encoder parameters {n / 1e6:.2f} M")
    return InferenceModel(config=config, params=params, step=0, checkpoint_hash=params_hash(params))


def run(model, utts, out: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    writer.export_model(model, utts, out, source_spec="bench", split="bench",
                        options=writer.ExportOptions(shard_size=64))
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--skip-paper", action="store_true")
    args = ap.parse_args()
    utts = speech(args.seconds)
    audio_s = sum(len(u["audio"]) for u in utts) / 16000
    print(f"{len(utts)} utterances, {audio_s:.1f} s of audio; devices: {jax.devices()}")
    for size in ("tiny",) + (() if args.skip_paper else ("paper",)):
        model = encoder_model(size)
        with tempfile.TemporaryDirectory() as tmp:
            for label in ("first (compiles)", "warm"):
                wall, cpu = run(model, utts, os.path.join(tmp, label.split()[0]))
                print(f"{size} {label}: {wall:.1f} s wall, {cpu:.1f} s CPU -> {audio_s / wall:.2f} audio-s/s "
                      f"(real-time factor {wall / audio_s:.3f}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
