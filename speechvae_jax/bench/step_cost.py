"""XLA's cost analysis of the VAE's train steps, and what it implies per accelerator chip (prints
figures; no compilation, so the paper-scale step is costed on a CPU machine).

  python -m speechvae_jax.bench.step_cost [--size paper] [--steps 600000] [--runs 26]

For each update kind of `train.update_mode="alternating"` (generator with the GAN losses, then the
discriminator) it lowers the fused step at the config's batch and crop and prints XLA's FLOP and
byte counts. For a few chips it then prints two bounds on the time of one G + D pair on one chip:
the compute floor (FLOPs at the chip's peak dense bf16 rate) and the memory ceiling (the bytes of
the unfused HLO at the chip's HBM bandwidth; fusion only lowers it), and the chip-hours of `--steps`
steps and of `--runs` such runs (a study), and the step time at `--utilisation` of peak FLOPs. It
also prints the train state's bytes by part (parameters, AdamW moments, EMA, the frozen teacher).
These are estimates, not measurements; activations need the compiled step (`memory_analysis`).
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from speechvae_jax.bench.train_step import teacher_for
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules

# Public peak dense bf16 FLOP/s and HBM bandwidth (bytes/s) per chip.
CHIPS = {"TPU v5e": (197e12, 819e9), "TPU v5p": (459e12, 2765e9), "H100 SXM": (989e12, 3350e9),
         "H200": (989e12, 4800e9)}
KINDS = ("generator+gan", "discriminator")


def _gib(tree) -> float:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)) / 2 ** 30


def step_costs(size: str) -> dict[str, tuple[float, float]]:
    """{update kind: (FLOPs, bytes accessed)} of the fused joint_marginal step at the config's batch;
    prints the state's memory by part first."""
    teacher, layer = teacher_for(size)
    c = load_config_file(size, "joint_marginal")
    c.teacher.layer = layer
    b, n = c.train.batch_size, c.data.crop_samples
    m = Modules(c, teacher_dim=teacher.config.hidden_size)
    state = jax.eval_shape(lambda r: m.init_state(r, n), jax.random.PRNGKey(0))
    batch = {k: jax.ShapeDtypeStruct((b, n), jnp.float32) for k in ("audio", "mask")}
    parts = {"generator params": state["gen"], "generator AdamW moments": state["gen_opt"], "EMA": state["ema"],
             "discriminator params": state["disc"], "discriminator AdamW moments": state["disc_opt"],
             "teacher (frozen)": teacher.params}
    print("  ".join(f"{k} {_gib(v):.2f} GiB" for k, v in parts.items()), flush=True)
    out = {}
    for kind in KINDS:
        u = steps.make_update(m, teacher, kind)
        cost = jax.jit(lambda s, x, f, u=u: u.apply(s, *u.grads(s, x, f))).lower(
            state, batch, teacher.params).cost_analysis() or {}
        out[kind] = (float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)))
        print(f"{kind:14s} batch {b} x {n}: {out[kind][0] / 1e12:8.2f} TFLOP  {out[kind][1] / 1e12:7.2f} TB "
              "(unfused HLO)", flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="paper", choices=("tiny", "paper"))
    ap.add_argument("--steps", type=int, default=600_000, help="steps of one run (alternating: half G, half D)")
    ap.add_argument("--runs", type=int, default=26, help="runs of a study (docs/study.md)")
    ap.add_argument("--utilisation", type=float, default=0.2, help="assumed fraction of peak FLOP/s")
    args = ap.parse_args()
    costs = step_costs(args.size)
    flops, nbytes = (sum(c[i] for c in costs.values()) for i in (0, 1))
    pairs = args.steps / 2
    print(f"one G + D pair: {flops / 1e12:.2f} TFLOP, {nbytes / 1e12:.2f} TB; {pairs:.0f} pairs per run")
    for chip, (peak, bandwidth) in CHIPS.items():
        floor, ceiling = flops / peak, nbytes / bandwidth
        hours = [pairs * t / 3600 for t in (floor, ceiling)]
        at = floor / args.utilisation
        study_at = pairs * at * args.runs / 3600
        print(f"{chip:9s} pair {floor * 1e3:7.1f} to {ceiling * 1e3:7.1f} ms   run {hours[0]:7.1f} to {hours[1]:7.1f} "
              f"chip-h   study ({args.runs} runs) {hours[0] * args.runs:8.0f} to {hours[1] * args.runs:8.0f} chip-h   "
              f"at {args.utilisation:.0%} of peak: pair {at * 1e3:.0f} ms, study {study_at:.0f} chip-h")


if __name__ == "__main__":
    main()
