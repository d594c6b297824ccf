"""Benchmark of the VAE model and discriminators (prints figures; no assertions).

  python -m speechvae_jax.bench.models [--repeats R] [--skip-paper]

Prints: parameter counts of both presets (eval_shape), the tiny generator step (encoder + decoder +
MR-STFT + KL, forward and backward) with each decoder kind at batch 8 x 0.5 s and x 1 s, the tiny
discriminator step of each family (MPD, CQT, STFT), learned upsampling as sub-pixel convolutions
vs Flax ConvTranspose (tiny decoder and paper-scale layers), and the paper-scale forward pass (encode
+ decode) at batch 1 x 32768 samples. Times are medians over `repeats` runs after one compile run; the
1-minute load average is printed since the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.losses.adversarial import lsgan_discriminator_loss
from speechvae_jax.losses.kl import vae_kl
from speechvae_jax.losses.spectral import multi_resolution_stft_loss
from speechvae_jax.models import bottleneck
from speechvae_jax.models.discriminators import Discriminators
from speechvae_jax.models.layers import SubPixelUpsample, TransposedUpsample
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def timed(fn, *args, repeats: int, cpu: bool = False):
    """(compile+first-run seconds, median wall seconds of `repeats` further runs[, median CPU seconds]).

    CPU seconds (this process, all threads) show the work a step needs when the machine is shared:
    on a quiet 2-core machine a step takes roughly CPU seconds / 2 of wall time.
    """
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    runs, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        runs.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    if cpu:
        return first, statistics.median(runs), statistics.median(cpus)
    return first, statistics.median(runs)


def audio_batch(batch: int, samples: int) -> jnp.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(samples) / 16000.0
    x = 0.2 * np.sin(2 * np.pi * 150.0 * t)[None] + 0.02 * rng.normal(size=(batch, samples))
    return jnp.asarray(x, jnp.float32)


def param_counts() -> None:
    print("== parameter counts (jax.eval_shape) ==")
    for size in ("tiny", "paper"):
        cfg = model_config(size)
        vae = jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))["params"]
        cfg.discriminators.stft.enabled = True
        disc = jax.eval_shape(Discriminators(cfg.discriminators).init, jax.random.key(0),
                              jnp.zeros((1, 4096)))["params"]
        fam = {f: sum(count(v) for k, v in disc.items() if k.startswith(f)) for f in ("mpd", "cqt", "stft")}
        print(f"{size:6s} encoder {count(vae['encoder']) / 1e6:8.3f}M  decoder {count(vae['decoder']) / 1e6:7.3f}M  "
              f"MPD {fam['mpd'] / 1e6:7.3f}M  CQT {fam['cqt'] / 1e6:6.3f}M  STFT-D {fam['stft'] / 1e6:6.3f}M")


def generator_loss_fn(model):
    def loss(params, audio, rng):
        v = {"params": params}
        h = model.apply(v, audio, method=model.encode_features)
        mean, scale = bottleneck.split_stats(model.apply(v, h, method=model.encode_head))
        sigma = bottleneck.sigma_from_scale(scale)
        recon = model.apply(v, bottleneck.sample(mean, sigma, rng), method=model.decode)
        return multi_resolution_stft_loss(recon, audio) + 1e-3 * vae_kl(mean, sigma)
    return loss


def tiny_steps(repeats: int) -> None:
    print("== tiny generator step: fwd+bwd of encoder + decoder + MR-STFT (7 res, A-weighted) + KL ==")
    for kind in ("bigvgan", "istft"):
        cfg = model_config("tiny")
        cfg.decoder.kind = kind
        model = SpeechVAE(cfg)
        params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
        grad = jax.jit(jax.value_and_grad(generator_loss_fn(model)))
        for samples in (8000, 16000):
            audio = audio_batch(8, samples)
            first, med, cpu = timed(grad, params, audio, jax.random.key(1), repeats=repeats, cpu=True)
            print(f"decoder {kind:7s} batch 8 x {samples}: compile+first {first:6.2f}s  step {med:6.3f}s  "
                  f"({8 * samples / 16000 / med:6.1f} audio-s/s)  CPU {cpu:6.3f}s")
    print("== tiny discriminator step per family: fwd+bwd of the LSGAN loss on real and fake ==")
    audio = audio_batch(8, 8000)
    for family in ("mpd", "cqt", "stft"):
        dcfg = model_config("tiny").discriminators
        for f in ("mpd", "cqt", "stft"):
            dcfg[f].enabled = f == family
        disc = Discriminators(dcfg)
        dparams = jax.jit(disc.init)(jax.random.key(0), audio)

        def dloss(p, real, fake, disc=disc):
            return lsgan_discriminator_loss(disc.apply(p, real), disc.apply(p, fake))

        first, med, cpu = timed(jax.jit(jax.grad(dloss)), dparams, audio, audio * 0.5, repeats=repeats, cpu=True)
        print(f"{family:4s} batch 8 x 8000: compile+first {first:6.2f}s  step {med:6.3f}s  CPU {cpu:6.3f}s")


def upsampling(repeats: int) -> None:
    print("== learned upsampling: sub-pixel convs vs Flax ConvTranspose (fwd+bwd) ==")
    for kind in ("subpixel", "transpose"):
        cfg = model_config("tiny")
        cfg.decoder.upsample = kind
        model = SpeechVAE(cfg)
        params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
        z = jnp.asarray(np.random.default_rng(0).normal(size=(8, 20, 64)), jnp.float32)
        fn = jax.jit(jax.grad(lambda p, z: jnp.sum(model.apply({"params": p}, z, method=model.decode) ** 2)))
        first, med = timed(fn, params, z, repeats=repeats)
        print(f"tiny decoder, batch 8 x 20 frames, {kind:9s}: compile+first {first:6.2f}s  step {med:6.3f}s")
    for c_in, stride, frames in ((512, 5, 82), (256, 5, 410), (128, 4, 2050), (64, 4, 8200)):
        x = jnp.asarray(np.random.default_rng(0).normal(size=(1, frames, c_in)), jnp.float32)
        line = []
        for cls in (SubPixelUpsample, TransposedUpsample):
            mod = cls(c_in // 2, stride, 2 * stride)
            p = mod.init(jax.random.key(0), x)
            fn = jax.jit(jax.grad(lambda p, x: jnp.sum(mod.apply(p, x) ** 2)))
            line.append(timed(fn, p, x, repeats=repeats)[1])
        print(f"paper layer {c_in}->{c_in // 2} stride {stride} at {frames} frames: subpixel {line[0] * 1e3:7.1f}ms  "
              f"transpose {line[1] * 1e3:7.1f}ms  ratio {line[1] / line[0]:4.1f}x")


def paper_forward(repeats: int) -> None:
    print("== paper-scale forward (encode -> mean -> decode), batch 1 x 32768 samples, float32 ==")
    model = SpeechVAE(model_config("paper"))
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))
    fwd = jax.jit(lambda p, a: model.apply(p, a)[0])
    first, med, cpu = timed(fwd, params, audio_batch(1, 32768), repeats=repeats, cpu=True)
    print(f"compile+first {first:6.2f}s  forward {med:6.3f}s  CPU {cpu:6.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-paper", action="store_true", help="skip the paper-scale forward pass")
    args = parser.parse_args()
    print(f"devices: {jax.devices()[0].platform} x {jax.device_count()}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    param_counts()
    tiny_steps(args.repeats)
    upsampling(args.repeats)
    if not args.skip_paper:
        paper_forward(max(1, args.repeats // 2))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
