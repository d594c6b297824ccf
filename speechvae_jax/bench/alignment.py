"""Benchmark: the distance-matrix term (naive vs blockwise) and the cost of adaptive weighting.

  python -m speechvae_jax.bench.alignment

Prints, for N = 4k, 16k, 64k pooled frames of width 1024 (a 64-d latent projected to the teacher
width, against teacher-width frames): wall time and the peak memory the execution adds (Linux peak
RSS, reset after the inputs and the compiled program exist; each case in a fresh process) for the
forward pass and forward + backward, naive N x N vs blockwise. The naive form is not run where its
two N x N matrices alone exceed MEMORY_LIMIT. (XLA's CPU memory_analysis() misses the dot outputs
here, so it is not used.)
Then the adaptive-weight computation (last_layer_grads for the reference and two terms + norms) at
tiny-config sizes, and a tiny-config generator loss-and-gradient with adaptive vs fixed weights.
"""
from __future__ import annotations

import multiprocessing
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.losses import alignment, weighting
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train import state as train_state
from speechvae_jax.train import steps

SIZES = (4096, 16384, 65536)
WIDTH = 1024
LATENT = 64
FRAMES_PER_ITEM = 256
BLOCK = 1024
MEMORY_LIMIT = 8 * 2**30  # bytes; the machine (24 GiB) is shared


def _run(compiled, args, repeats: int) -> tuple[float, float]:
    """Best (wall seconds, process CPU seconds) of `repeats` executions."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(*args))
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _matrix_inputs(n: int):
    r = np.random.default_rng(0)
    z = r.normal(size=(n // FRAMES_PER_ITEM, FRAMES_PER_ITEM, LATENT)).astype(np.float32)
    w = (r.normal(size=(LATENT, WIDTH)) / np.sqrt(LATENT)).astype(np.float32)
    p = jnp.asarray(z @ w)
    s = jnp.asarray(r.normal(size=p.shape).astype(np.float32))
    mask = jnp.ones(p.shape[:2], bool)
    return p, s, mask


def _measure_matrix(n: int, block: int | None, with_grad: bool, repeats: int, queue) -> None:
    """In a fresh process: best wall time and the peak RSS the execution adds (VmHWM reset)."""
    args = _matrix_inputs(n)
    loss = lambda p, s, m: alignment.marginal_distance_matrix(p, s, m, 0.25, "batch", block)
    fn = jax.value_and_grad(loss, argnums=(0, 1)) if with_grad else loss
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(args)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (peak RSS) to the current RSS
    base = _vm_kib("VmRSS")
    wall, cpu = _run(compiled, args, repeats)
    queue.put((wall, cpu, (_vm_kib("VmHWM") - base) / 1024))


def bench_matrix() -> None:
    ctx = multiprocessing.get_context("spawn")
    print(f"distance matrix, width {WIDTH}, pooling 'batch', block {BLOCK}, float32; "
          "peak = RSS the execution adds over inputs + compiled program")
    print(f"{'N':>6} {'form':>9} {'pass':>8} {'wall s':>8} {'CPU s':>8} {'peak MiB':>9}")
    for n in SIZES:
        for form, block in (("naive", None), ("blockwise", BLOCK)):
            for name, with_grad in (("fwd", False), ("fwd+bwd", True)):
                matrices = 2 * n * n * 4  # the two N x N cosine matrices of the naive form
                if block is None and matrices > MEMORY_LIMIT:
                    print(f"{n:>6} {form:>9} {name:>8} {'not run':>8} {'':>8} {'>' + str(matrices // 2**20):>9}"
                          f"  (two N x N float32 matrices exceed the {MEMORY_LIMIT // 2**30} GiB limit)",
                          flush=True)
                    continue
                queue = ctx.Queue()
                proc = ctx.Process(target=_measure_matrix,
                                   args=(n, block, with_grad, 3 if n <= 4096 else 1, queue))
                proc.start()
                proc.join()
                if proc.exitcode != 0:
                    print(f"{n:>6} {form:>9} {name:>8} failed (exit code {proc.exitcode})", flush=True)
                    continue
                wall, cpu, peak = queue.get()
                print(f"{n:>6} {form:>9} {name:>8} {wall:>8.2f} {cpu:>8.2f} {peak:>9.0f}", flush=True)


def _tiny_config(adaptive: bool):
    config = load_config_file("tiny", "joint_marginal")
    config.alignment.adaptive = adaptive
    return config


def bench_adaptive() -> None:
    config = _tiny_config(adaptive=True)
    b, n = config.train.batch_size, config.data.crop_samples
    audio = jnp.zeros((b, n), jnp.float32)
    vae = SpeechVAE(config.model)
    params = jax.eval_shape(lambda: vae.init(jax.random.PRNGKey(0), audio))["params"]
    h = jax.eval_shape(lambda p: vae.apply({"params": p}, audio, method="encode_features"), params)
    r = np.random.default_rng(0)
    h = jnp.asarray(r.normal(size=h.shape).astype(np.float32))
    cts = [jnp.asarray(r.normal(size=h.shape[:2] + (2 * config.model.latent_dim,)).astype(np.float32))
           for _ in range(3)]

    def weights(h, ref, ct1, ct2):
        grads = {k: weighting.last_layer_grads(h, ct) for k, ct in (("mcos", ct1), ("mdms", ct2))}
        return weighting.adaptive_weights(weighting.last_layer_grads(h, ref), grads)

    compiled = jax.jit(weights).lower(h, *cts).compile()
    wall, cpu = _run(compiled, (h, *cts), repeats=50)
    print(f"adaptive weights (3 x last_layer_grads + norms), h {tuple(h.shape)}, "
          f"stats width {2 * config.model.latent_dim}: wall {wall * 1e6:.0f} us, CPU {cpu * 1e6:.0f} us",
          flush=True)
    bench_generator_step()


def bench_generator_step() -> None:
    teacher_dim = 256
    compiled = {}
    for adaptive in (False, True):
        config = _tiny_config(adaptive)
        m = train_state.Modules(config, teacher_dim)
        b, n = config.train.batch_size, config.data.crop_samples
        st = jax.jit(lambda rng: m.init_state(rng, n))(jax.random.PRNGKey(0))
        frames = -(-n // config.model.hop)
        r = np.random.default_rng(0)
        batch = {"audio": jnp.asarray(0.1 * r.normal(size=(b, n)).astype(np.float32)),
                 "mask": jnp.ones((b, n), jnp.float32)}
        targets = (jnp.asarray(r.normal(size=(b, frames, teacher_dim)).astype(np.float32)), None,
                   jnp.ones((b, frames), bool))

        def loss_and_grads(gen, batch, rng, step, targets, m=m, disc=st["disc"]):
            return steps.generator_loss_and_grads(m, gen, disc, batch, rng, step, targets, gan=False)[:2]

        args = (st["gen"], batch, jax.random.PRNGKey(1), jnp.int32(0), targets)
        compiled[adaptive] = (jax.jit(loss_and_grads).lower(*args).compile(), args)
    times = {False: (float("inf"),) * 2, True: (float("inf"),) * 2}
    for _ in range(10):  # alternate, so both see the same load
        for adaptive, (fn, args) in compiled.items():
            times[adaptive] = min(times[adaptive], _run(fn, args, repeats=1))
    (fw, fc), (aw, ac) = times[False], times[True]
    print(f"tiny generator loss + grads (joint_marginal, no GAN), batch {b} x {n} samples: "
          f"fixed weights wall {fw * 1e3:.1f} ms / CPU {fc * 1e3:.1f} ms, adaptive wall {aw * 1e3:.1f} ms"
          f" / CPU {ac * 1e3:.1f} ms (overhead wall {100 * (aw - fw) / fw:+.1f}%, "
          f"CPU {100 * (ac - fc) / fc:+.1f}%)", flush=True)


def main() -> None:
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    bench_adaptive()
    bench_matrix()


if __name__ == "__main__":
    main()
