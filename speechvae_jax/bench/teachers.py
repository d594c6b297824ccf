"""Teacher figures (prints them; no assertions).

  python -m speechvae_jax.bench.teachers throughput [--repeats R] [--skip-large] [--teacher DIR]
  python -m speechvae_jax.bench.teachers probe --teacher DIR --data corpus:DIR [--layers 0,1,2]

throughput: jitted forward passes (all hidden states) in audio-seconds per wall second, batch 1,
for the in-house tiny teacher (configs/teacher_tiny.py at random weights, or --teacher) on 10 s of
audio and for a WavLM-Large-shaped model (24 layers, width 1024, 316M parameters) at random
weights on 2 s; medians over `repeats` runs after a compile run, with the 1-minute load average
(the machine is shared).
probe: frame phoneme accuracy of linear probes on MFCC, log-mel and each teacher layer
(`evaluate.teacher_quality.phoneme_probe_figures`), test split, mean and std over 3 seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.evaluate.teacher_quality import phoneme_probe_figures
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.teachers.store import build_teacher, load_teacher

WAVLM_LARGE = EncoderConfig(kind="wavlm", conv_dim=(512,) * 7, conv_bias=False, feat_extract_norm="layer",
                            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                            intermediate_size=4096, do_stable_layer_norm=True, do_normalize=True)


def _random_teacher(cfg: EncoderConfig):
    params = jax.jit(SSLEncoder(cfg).init)(jax.random.PRNGKey(0), jnp.zeros((1, 16000)))["params"]
    return build_teacher(cfg, params, default_layer=cfg.num_hidden_layers - 1)


def throughput(teacher, seconds: float, repeats: int) -> dict:
    audio = jnp.asarray(np.random.default_rng(0).standard_normal((1, int(seconds * 16000))) * 0.1, jnp.float32)
    t0 = time.perf_counter()
    jax.block_until_ready(teacher.hidden_states(audio))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(teacher.hidden_states(audio))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(teacher.params))
    return {"params": params, "input_seconds": seconds, "compile_and_first_s": round(first, 2),
            "median_s": round(med, 4), "audio_seconds_per_second": round(seconds / med, 1),
            "load_avg_1min": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["throughput", "probe"])
    ap.add_argument("--teacher", default=None, help="a teacher directory (default: random tiny teacher)")
    ap.add_argument("--data", default=None, help="probe: data source spec")
    ap.add_argument("--layers", default=None, help="probe: comma-separated hidden-state indices")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args()
    if args.what == "probe":
        if not (args.teacher and args.data):
            ap.error("probe needs --teacher and --data")
        layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
        res = phoneme_probe_figures(args.teacher, args.data, layers)
        print(json.dumps(res, indent=1))
        for name, r in res["features"].items():
            print(f"{name:>18s}  frame phoneme accuracy {r['accuracy_mean']:.3f} +- {r['accuracy_std']:.3f}")
        return
    if args.teacher:
        tiny = load_teacher(args.teacher)
    else:
        tiny = _random_teacher(EncoderConfig.from_dict(load_config_file("teacher_tiny").model.to_dict()))
    print("tiny teacher, 10 s:", json.dumps(throughput(tiny, 10.0, args.repeats)), flush=True)
    if not args.skip_large:
        print("WavLM-Large shape, 2 s:", json.dumps(throughput(_random_teacher(WAVLM_LARGE), 2.0, args.repeats)))


if __name__ == "__main__":
    main()
