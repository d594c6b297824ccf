"""Benchmark of the jitted train steps (prints figures; no assertions).

  python -m speechvae_jax.bench.train_step [--size tiny|paper] [--batch B] [--crop N] [--repeats R] \
      [--set model.encoder.kind=dac ...]

For each step kind it prints the first call (compilation included), median step time, steps/s and
audio-seconds/s, and the overhead of adaptive weighting (joint_marginal with `alignment.adaptive` on
vs off). The teacher is a real WavLM-layout encoder at random weights (tiny: 4 layers x 256; paper: WavLM-Large shape).
Peak resident memory of the process is printed at the end.
"""
from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.cli import config as cli_config
from speechvae_jax.teachers import EncoderConfig, build_teacher
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules


def teacher_config(size: str) -> tuple[EncoderConfig, int]:
    """(encoder config, layer) of the benchmark teacher: WavLM-Large's shape (paper) or 4 x 256 (tiny)."""
    if size == "paper":
        return EncoderConfig(kind="wavlm", conv_dim=(512,) * 7, conv_bias=True, feat_extract_norm="layer",
                             do_stable_layer_norm=True, hidden_size=1024, num_hidden_layers=24,
                             num_attention_heads=16, intermediate_size=4096, do_normalize=True), 23
    return EncoderConfig(kind="wavlm", conv_dim=(128,) * 7, hidden_size=256, num_hidden_layers=4,
                         num_attention_heads=4, intermediate_size=1024, num_conv_pos_embeddings=32,
                         num_conv_pos_embedding_groups=8), 3


def teacher_for(size: str):
    cfg, layer = teacher_config(size)
    params = SSLEncoder(cfg).init(jax.random.PRNGKey(1), jnp.zeros((1, 16000)), None)["params"]
    return build_teacher(cfg, params, default_layer=layer), layer


def time_step(fn, state, batch, tparams, repeats):
    """(first call incl. compilation, median later step) in seconds."""
    t0 = time.perf_counter()
    state, metrics = fn(state, batch, tparams)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, metrics = fn(state, batch, tparams)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return compile_s, float(np.median(times)), state


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="tiny", choices=("tiny", "paper"))
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--crop", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cases", default="none:generator,joint_marginal:generator:fixed,"
                    "joint_marginal:generator,joint_marginal:generator:gan,joint_marginal:discriminator:gan",
                    help="comma-separated VARIANT:UPDATE[:fixed][:gan] (fixed = adaptive weighting off)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override of every case, as --config.KEY=VALUE of the CLI (repeatable)")
    args = ap.parse_args()
    overrides = [tuple(kv.split("=", 1)) for kv in args.set]
    teacher, layer = teacher_for(args.size)
    print(f"devices: {jax.devices()}  size={args.size}  overrides={dict(overrides)}")
    rows = []
    cases = []
    for case in args.cases.split(","):
        variant, update, *opts = case.split(":")
        cases.append((variant, variant == "joint_marginal" and "fixed" not in opts, update, "gan" in opts))
    for variant, adaptive, update, gan in cases:
        c = cli_config.load(f"{args.size}:{variant}", overrides)
        c.alignment.adaptive = adaptive
        c.teacher.layer = layer
        b = args.batch or c.train.batch_size
        n = args.crop or c.data.crop_samples
        m = Modules(c, teacher_dim=teacher.config.hidden_size)
        state = jax.jit(lambda r: m.init_state(r, n))(jax.random.PRNGKey(0))
        rng = np.random.default_rng(0)
        batch = {"audio": jnp.asarray(0.1 * rng.standard_normal((b, n)), jnp.float32),
                 "mask": jnp.ones((b, n), jnp.float32)}
        u = steps.make_update(m, teacher, "discriminator" if update == "discriminator" else
                              "generator+gan" if gan else "generator")
        fn = jax.jit(lambda s, b, f, u=u: u.apply(s, *u.grads(s, b, f)), donate_argnums=0)  # the fused step
        compile_s, step_s, _ = time_step(fn, state, batch, teacher.params, args.repeats)
        audio_s = b * n / 16000
        rows.append((variant, adaptive, update, gan, compile_s, step_s, audio_s / step_s))
        print(f"{variant:15s} adaptive={adaptive!s:5s} {update:13s} gan={gan!s:5s} "
              f"compile {compile_s:6.1f} s  step {step_s * 1000:8.1f} ms  "
              f"{1 / step_s:6.2f} steps/s  {audio_s / step_s:7.2f} audio-s/s  (batch {b} x {n})")
    by = {(r[0], r[1], r[2], r[3]): r[5] for r in rows}
    for gan in (False, True):
        on = by.get(("joint_marginal", True, "generator", gan))
        off = by.get(("joint_marginal", False, "generator", gan))
        if on and off:
            print(f"adaptive-weighting overhead (generator step, gan={gan}): {100 * (on / off - 1):+.1f} %")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
