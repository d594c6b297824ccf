"""Data pipeline throughput in audio-seconds per wall-second.

    python -m speechvae_jax.bench.data_pipeline [corpus:DIR]

Without an argument it builds (once) a 10-minute corpus in /tmp/speechvae_bench_corpus. Prints
the build time, then training-crop throughput (paper crop 32768, batch 8) with 0 and 2 Grain
workers, then full-utterance batching throughput (`utterance_batches`).
"""
from __future__ import annotations

import sys
import time

from speechvae_jax import corpus
from speechvae_jax.data import pipeline

DEFAULT_DIR = "/tmp/speechvae_bench_corpus"


def train_throughput(spec: str, workers: int, batch: int = 8, crop: int = 32768,
                     batches: int = 40) -> tuple[float, float]:
    """(audio-seconds per second after the first batch, seconds to the first batch)."""
    cfg = pipeline.default_data_config()
    cfg.source, cfg.crop_samples, cfg.num_workers = spec, crop, workers
    t0 = time.perf_counter()
    it = iter(pipeline.train_dataset(cfg, global_batch_size=batch, seed=0, process_index=0,
                                     process_count=1))
    next(it)
    t1 = time.perf_counter()
    for _ in range(batches):
        next(it)
    dt = time.perf_counter() - t1
    return batches * batch * crop / cfg.sample_rate / dt, t1 - t0


def utterance_throughput(spec: str, split: str = "train") -> float:
    """Audio-seconds per second of `utterance_batches` over one split (batch 8, 1 s buckets)."""
    t0 = time.perf_counter()
    samples = sum(int(b["mask"].sum()) for b in pipeline.utterance_batches(
        spec, split=split, batch_size=8, bucket_samples=16000))
    return samples / 16000 / (time.perf_counter() - t0)


def main(spec: str | None = None) -> None:
    if spec is None:
        t0 = time.perf_counter()
        spec = "corpus:" + corpus.build_corpus(DEFAULT_DIR, minutes=10, seed=0, workers=2)
        print(f"corpus build (10 min, 2 workers, skipped if present): "
              f"{time.perf_counter() - t0:.1f} s")
    for workers in (0, 2):
        rate, first = train_throughput(spec, workers)
        print(f"train_dataset  workers={workers}: {rate:8.1f} audio-s/s "
              f"(first batch after {first:.1f} s)")
    print(f"utterance_batches       : {utterance_throughput(spec):8.1f} audio-s/s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
