"""The engine's two ways to run a train step, fused (one jitted program) and split (grads, then apply),
measured (prints figures; no assertions).

  python -m speechvae_jax.bench.step_modes time [--size tiny] [--repeats 5]
      compile time and median step time of both modes on this machine's devices (CPU here)
  python -m speechvae_jax.bench.step_modes aot --topology v5e:2x2 [--size paper] [--batch-per-device 2]
      compiled memory and FLOPs per device of both modes, compiled ahead of time for a TPU slice
      that need not be present (`libtpu` importable; topology names as gcloud's, e.g. v5e:2x2,
      v5p:2x2x1, v4:2x2x1), or `--topology cpu` for this host's CPU devices (e.g. 8 with
      XLA_FLAGS=--xla_force_host_platform_device_count=8)

Both go through `engine.loop.compile_update`, what the engine runs. The model is `--size`'s preset with
the joint-marginal alignment and a random teacher of `bench.train_step.teacher_config(size)` (WavLM-Large's
shape for paper); update kinds `--kinds` (default generator+gan and discriminator: the alternating pair).
Memory per device, from XLA's `memory_analysis()`: live = arguments + outputs - aliased (donated) + temporaries;
a split step holds the gradient tree between its programs (grads' output, apply's argument).
"""
from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.bench.train_step import teacher_config, teacher_for
from speechvae_jax.engine import loop
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.teachers.store import Teacher
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules

GiB = 2 ** 30


def _setup(size: str, teacher, teacher_dim: int, devices: list, batch_per_device: int, fsdp: int):
    """(config, modules, mesh, shardings, abstract state, abstract batch, abstract frozen)."""
    c = load_config_file(size, "joint_marginal")
    c.teacher.layer = teacher_config(size)[1]
    mesh = mesh_lib.make_mesh((-1, fsdp), devices)
    m = Modules(c, teacher_dim, mesh)
    crop = int(c.data.crop_samples)
    abstract = jax.eval_shape(lambda r: m.init_state(r, crop), jax.random.PRNGKey(0))
    state_sh = mesh_lib.tree_shardings(abstract, mesh, int(c.mesh.fsdp_min_size))
    rep, bsh = mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)
    frozen_sh = jax.tree.map(lambda _: rep, teacher.params)
    b = batch_per_device * len(devices)
    batch = {k: jax.ShapeDtypeStruct((b, crop), jnp.float32, sharding=bsh) for k in ("audio", "mask")}
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sh)
    frozen = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=rep), teacher.params)
    shardings = (state_sh, {k: bsh for k in batch}, frozen_sh, rep)
    return c, m, mesh, shardings, state, batch, frozen


def _device_bytes(tree) -> int:
    """Bytes one device holds of a tree of ShapeDtypeStructs with shardings."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _memory(compiled) -> dict[str, float]:
    ma = compiled.memory_analysis()
    live = ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes + ma.temp_size_in_bytes
    return {"arguments": ma.argument_size_in_bytes / GiB, "outputs": ma.output_size_in_bytes / GiB,
            "aliased": ma.alias_size_in_bytes / GiB, "temporaries": ma.temp_size_in_bytes / GiB,
            "live": live / GiB}


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def aot(args) -> None:
    if args.topology == "cpu":
        devices = jax.devices()
        where = f"{len(devices)} x {devices[0].device_kind} (this host)"
    else:
        from jax.experimental import topologies

        devices = topologies.get_topology_desc(platform="tpu", topology_name=args.topology).devices
        where = f"{args.topology}: {len(devices)} x {devices[0].device_kind} (compiled without the chips)"
    ecfg, layer = teacher_config(args.size)
    abstract_params = jax.eval_shape(lambda r: SSLEncoder(ecfg).init(r, jnp.zeros((1, 16000)), None)["params"],
                                     jax.random.PRNGKey(1))
    teacher = Teacher(SSLEncoder(ecfg), ecfg, abstract_params, "abstract", layer, {})
    c, m, mesh, shardings, state, batch, frozen = _setup(args.size, teacher, ecfg.hidden_size, devices,
                                                         args.batch_per_device, args.fsdp)
    n_params = sum(x.size for x in jax.tree.leaves(state["gen"])) + sum(x.size for x in jax.tree.leaves(state["disc"]))
    n_teacher = sum(x.size for x in jax.tree.leaves(frozen))
    print(f"{where}; mesh {dict(mesh.shape)}; {args.size} preset, joint_marginal; batch "
          f"{batch['audio'].shape[0]} x {batch['audio'].shape[1]} samples ({args.batch_per_device} per device); "
          f"trained params {n_params / 1e6:.1f} M, teacher {n_teacher / 1e6:.1f} M")
    print("state per device: " + ", ".join(f"{k} {_device_bytes(v) / GiB:.3f}" for k, v in state.items()
                                           if _device_bytes(v) > 2 ** 20)
          + f"; teacher {_device_bytes(frozen) / GiB:.3f} GiB", flush=True)
    for kind in args.kinds.split(","):
        update = steps.make_update(m, teacher, kind)
        for fused in (True, False):
            t0 = time.perf_counter()
            cu = loop.compile_update(update, fused, shardings, state, batch, frozen)
            took = time.perf_counter() - t0
            mems = [_memory(p) for p in cu.programs]
            flops = sum(_flops(p) for p in cu.programs)
            peak = max(mm["live"] for mm in mems)
            parts = "; ".join(
                f"{name}: args {mm['arguments']:.2f} + out {mm['outputs']:.2f} - aliased {mm['aliased']:.2f} "
                f"+ temp {mm['temporaries']:.2f} = {mm['live']:.2f} GiB"
                for name, mm in zip(("step",) if fused else ("grads", "apply"), mems))
            print(f"{kind:14s} {'fused' if fused else 'split':5s} peak {peak:6.2f} GiB/device  "
                  f"{flops / 1e12:7.3f} TFLOP/device/step  compile {took:6.1f} s  [{parts}]", flush=True)


def time_modes(args) -> None:
    teacher, _ = teacher_for(args.size)
    devices = jax.devices()
    c, m, mesh, shardings, state_abs, batch_abs, frozen_abs = _setup(
        args.size, teacher, teacher.config.hidden_size, devices, args.batch_per_device, args.fsdp)
    crop = int(c.data.crop_samples)
    rng = np.random.default_rng(0)
    b = batch_abs["audio"].shape[0]
    batch = {"audio": jax.device_put(0.1 * rng.standard_normal((b, crop)).astype(np.float32), shardings[1]["audio"]),
             "mask": jax.device_put(np.ones((b, crop), np.float32), shardings[1]["mask"])}
    frozen = jax.device_put(teacher.params, shardings[2])
    print(f"{len(devices)} x {devices[0].device_kind}; {args.size} preset, joint_marginal; batch {b} x {crop}; "
          f"{args.repeats} timed steps after the first")
    for kind in args.kinds.split(","):
        update = steps.make_update(m, teacher, kind)
        for fused in (True, False):
            state = jax.jit(lambda r: m.init_state(r, crop), out_shardings=shardings[0])(jax.random.PRNGKey(0))
            t0 = time.perf_counter()
            fn = loop.compile_update(update, fused, shardings, state, batch, frozen)
            compile_s = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats + 1):
                t0 = time.perf_counter()
                state, metrics = fn(state, batch, frozen)
                jax.block_until_ready((state, metrics))
                times.append(time.perf_counter() - t0)
            print(f"{kind:14s} {'fused' if fused else 'split':5s} compile {compile_s:6.1f} s  first step "
                  f"{times[0]:6.2f} s  median step {np.median(times[1:]) * 1000:7.1f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("time", "aot"))
    ap.add_argument("--size", default=None, choices=("tiny", "paper"), help="tiny for time, paper for aot")
    ap.add_argument("--topology", default="cpu", help="aot: a TPU topology (v5e:2x2, v5p:2x2x1, v4:2x2x1) or cpu")
    ap.add_argument("--batch-per-device", type=int, default=None, help="(2 paper, 8 / devices tiny)")
    ap.add_argument("--fsdp", type=int, default=1, help="size of the mesh's fsdp axis (1)")
    ap.add_argument("--kinds", default="generator+gan,discriminator", help="update kinds (train.steps.KINDS)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    jax.config.update("jax_enable_compilation_cache", False)  # compile times are measured
    args.size = args.size or ("tiny" if args.what == "time" else "paper")
    if args.batch_per_device is None:
        args.batch_per_device = 2 if args.size == "paper" else max(1, 8 // jax.device_count())
    (time_modes if args.what == "time" else aot)(args)


if __name__ == "__main__":
    main()
