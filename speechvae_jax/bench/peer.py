"""The PyTorch peer, side by side: the release model in eager PyTorch against the paper preset in JAX.

  python -m speechvae_jax.bench.peer [--batch 1] [--crop 32768] [--repeats 3] [--warmup 2] [--threads 2]
                                     [--flops] [--grouped] [--no-teacher] [--export-only]

Both sides are built at random weights, each in its own worker process (`bench.sides`), and timed
alternately (PyTorch, then JAX, per repeat, after `--warmup` untimed calls; medians printed): a
float32 2048^3 matmul, the generator step with the discriminators' forward for the GAN losses (the
`none` variant: MR-STFT + KL + LSGAN + feature matching, no teacher), the discriminator step (MPD +
sub-band CQT), the encoder alone (export), a WavLM-Large-shaped teacher forward (PyTorch
`transformers` vs this project's Flax port), and with `--flops` the achieved GFLOP/s of the JAX step
pair from XLA's cost analysis. Prints `lscpu` model and vector flags first. PyTorch side: the
reference packages (`bench.reference`), AdamW(1e-4, betas 0.8/0.99) as the release.
"""
from __future__ import annotations

import argparse
import subprocess

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.bench import reference
from speechvae_jax.bench.sides import alternate
from speechvae_jax.bench.train_step import teacher_for
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules


def cpu_line() -> str:
    """`lscpu` model name and the vector extensions that matter for float32 throughput."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    flags = set(info.get("Flags", "").split())
    vec = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs, flags {' '.join(vec)}"


def torch_parts(threads: int):
    """The release's modules and optimisers in eager PyTorch (train mode has no dropout or norm layers)."""
    import torch

    reference.enable()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc, dec, mpd, cqt = reference.encoder(), reference.decoder(), reference.mpd(), reference.cqt()
    gen_params = [*enc.parameters(), *dec.parameters()]
    disc_params = [*mpd.parameters(), *cqt.parameters()]
    opt_g = torch.optim.AdamW(gen_params, lr=1e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(disc_params, lr=1e-4, betas=(0.8, 0.99))
    return enc, dec, (mpd, cqt), opt_g, opt_d, reference.mrstft_loss()


def torch_steps(threads: int):
    """(generator step, discriminator step, encoder forward), each `fn(audio [B, 1, N])`."""
    import torch

    enc, dec, discs, opt_g, opt_d, mrstft = torch_parts(threads)

    def reconstruct(x):
        mean, scale = enc(x).chunk(2, dim=1)
        sigma = torch.nn.functional.softplus(scale) + 1e-4
        y = dec(mean + sigma * torch.randn_like(mean))[..., : x.shape[-1]]  # trimmed to the input, as SAT
        return y, (mean ** 2 + sigma ** 2 - torch.log(sigma ** 2) - 1).sum(1).mean()

    def g_step(x):
        y, kl = reconstruct(x)
        adv = fm = 0.0
        for d in discs:
            _, fakes, real_maps, fake_maps = d(x, y)
            adv = adv + sum(torch.mean((1 - f) ** 2) for f in fakes)
            fm = fm + sum(torch.mean(torch.abs(r.detach() - f)) for rs, fs in zip(real_maps, fake_maps)
                          for r, f in zip(rs, fs))
        loss = mrstft(y, x) + 0.1 * adv + 2.0 * fm + 1e-3 * kl
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()

    def d_step(x):
        with torch.no_grad():
            y, _ = reconstruct(x)
        loss = 0.0
        for d in discs:
            reals, fakes, _, _ = d(x, y)
            loss = loss + sum(torch.mean((1 - r) ** 2) + torch.mean(f ** 2) for r, f in zip(reals, fakes))
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    def export(x):
        with torch.inference_mode():
            enc(x)

    return g_step, d_step, export


def jax_steps(batch: int, crop: int, size: str = "paper"):
    """(generator step, discriminator step, encoder forward, FLOPs of the step pair) of a preset
    (`none` variant); each call takes the audio [batch, crop]."""
    c = load_config_file(size, "none")
    m = Modules(c, teacher_dim=None)
    holder = {"state": jax.jit(lambda r: m.init_state(r, crop))(jax.random.PRNGKey(0))}
    updates = {kind: steps.make_update(m, None, kind) for kind in ("generator+gan", "discriminator")}
    g_fn, d_fn = (jax.jit(lambda s, b, f, u=u: u.apply(s, *u.grads(s, b, f)), donate_argnums=0)
                  for u in updates.values())
    encode = jax.jit(lambda p, a: m.vae.apply({"params": p}, a, method=m.vae.encode))
    mask = jnp.ones((batch, crop), jnp.float32)

    def run(fn):
        def step(audio):
            holder["state"], metrics = fn(holder["state"], {"audio": audio, "mask": mask}, None)
            jax.block_until_ready(metrics)
        return step

    def export(audio):
        jax.block_until_ready(encode(holder["state"]["ema"]["vae"], audio))

    def flops(audio):
        total = 0.0
        for u in updates.values():
            lowered = jax.jit(u.grads).lower(holder["state"], {"audio": audio, "mask": mask}, None)
            cost = lowered.compile().cost_analysis()
            total += float((cost[0] if isinstance(cost, list) else cost).get("flops", 0.0))
        return total

    return run(g_fn), run(d_fn), export, flops


MATMUL = "float32 matmul 2048^3"
GENERATOR, DISCRIMINATOR = "generator step (GAN forward, no teacher)", "discriminator step"
EXPORT, TEACHER = "encoder forward (export)", "WavLM-Large forward"


def _audio(batch: int, crop: int) -> np.ndarray:
    return np.asarray(0.1 * np.random.default_rng(0).standard_normal((batch, crop)), np.float32)


def torch_side(batch: int, crop: int, threads: int, teacher: bool, export_only: bool, flops: bool):
    """The PyTorch worker's parts (`bench.sides` builder): the release in eager mode, `threads` threads."""
    import torch

    del flops  # a JAX-side figure
    reference.enable()
    torch.set_num_threads(threads)
    a = torch.randn(2048, 2048)
    audio = torch.from_numpy(_audio(batch, crop))[:, None]
    parts = {MATMUL: (lambda a: torch.mm(a, a), a)}
    if export_only:
        enc = reference.encoder()

        def export(x):
            with torch.inference_mode():
                enc(x)
    else:
        g_step, d_step, export = torch_steps(threads)
        parts.update({GENERATOR: (g_step, audio), DISCRIMINATOR: (d_step, audio)})
    parts[EXPORT] = (export, audio)
    if teacher and not export_only:
        from transformers import WavLMConfig, WavLMModel

        hf = WavLMModel(WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                    intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                                    conv_bias=True)).eval()

        def teacher_fwd(x):
            with torch.inference_mode():
                hf(x, output_hidden_states=True)
        parts[TEACHER] = (teacher_fwd, torch.from_numpy(_audio(batch, crop)))
    return parts, {"version": torch.__version__}


def jax_side(batch: int, crop: int, threads: int, teacher: bool, export_only: bool, flops: bool):
    """The JAX worker's parts (`bench.sides` builder): the paper preset, jitted; with `flops` the XLA
    cost-analysis FLOPs of the generator + discriminator step pair in the info."""
    del threads  # XLA:CPU uses every core
    mm = jax.jit(jnp.dot)
    a = jnp.asarray(np.random.default_rng(0).standard_normal((2048, 2048)), jnp.float32)
    audio = jnp.asarray(_audio(batch, crop))
    parts, info = {MATMUL: (lambda a: jax.block_until_ready(mm(a, a)), a)}, {"version": jax.__version__}
    if export_only:
        vae = SpeechVAE(load_config_file("paper", "none").model)
        params = jax.jit(vae.init)(jax.random.PRNGKey(0), jnp.zeros((1, 400)))["params"]
        encode = jax.jit(lambda p, a: vae.apply({"params": p}, a, method=vae.encode))
        export = lambda a: jax.block_until_ready(encode(params, a))  # noqa: E731
    else:
        g_step, d_step, export, step_flops = jax_steps(batch, crop)
        parts.update({GENERATOR: (g_step, audio), DISCRIMINATOR: (d_step, audio)})
        if flops:
            info["flops"] = step_flops(audio)
    parts[EXPORT] = (export, audio)
    if teacher and not export_only:
        ours, _ = teacher_for("paper")
        fwd = jax.jit(ours.apply_fn)
        parts[TEACHER] = (lambda x: jax.block_until_ready(fwd(ours.params, x, None)), audio)
    return parts, info


def peer_arguments() -> argparse.ArgumentParser:
    """The flags of every PyTorch-vs-JAX benchmark: batch, crop (samples), repeats, PyTorch threads."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--crop", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2,
                    help="untimed calls of each part per framework before the timed ones (after the first call)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grouped", action="store_true",
                    help="time each part's repeats back to back per framework instead of alternating calls")
    return ap


def print_table(first_column: str, medians: dict) -> None:
    """The markdown table of `bench.sides.alternate`'s medians, JAX speed relative to PyTorch."""
    print(f"\n| {first_column} | PyTorch eager (s) | JAX (s) | JAX speed / PyTorch |\n|---|---|---|---|")
    for name, m in medians.items():
        print(f"| {name} | {m['torch']:.3f} | {m['jax']:.3f} | {m['torch'] / m['jax']:.2f}x |")


def main() -> None:
    ap = peer_arguments()
    ap.add_argument("--flops", action="store_true", help="also compile the step pair for XLA's FLOP count")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="only the encoder forward (little memory)")
    args = ap.parse_args()
    kwargs = dict(batch=args.batch, crop=args.crop, threads=args.threads, teacher=not args.no_teacher,
                  export_only=args.export_only, flops=args.flops)
    print(f"cpu: {cpu_line()}\nbatch {args.batch} x {args.crop}, PyTorch on {args.threads} threads; "
          f"each framework in its own process, {'grouped' if args.grouped else 'alternating'} calls")
    medians, _, info = alternate({"torch": "speechvae_jax.bench.peer:torch_side",
                                      "jax": "speechvae_jax.bench.peer:jax_side"}, kwargs, args.repeats, args.grouped,
                                     args.warmup)
    print(f"jax {info['jax']['version']}, torch {info['torch']['version']}")
    matmul = medians.pop(MATMUL)
    peaks = {side: 2 * 2048 ** 3 / seconds / 1e9 for side, seconds in matmul.items()}
    print(f"float32 matmul 2048^3: PyTorch {peaks['torch']:.0f} GFLOP/s, XLA {peaks['jax']:.0f} GFLOP/s")
    print_table("step", medians)
    audio_s, export = args.batch * args.crop / 16000, medians[EXPORT]
    print(f"encoder export: PyTorch {audio_s / export['torch']:.2f}, JAX {audio_s / export['jax']:.2f} "
          f"audio-seconds/s")
    if args.export_only:
        return
    pair = {side: medians[GENERATOR][side] + medians[DISCRIMINATOR][side] for side in ("torch", "jax")}
    print(f"| generator + discriminator pair | {pair['torch']:.3f} | {pair['jax']:.3f} | "
          f"{pair['torch'] / pair['jax']:.2f}x |")
    if args.flops:
        f = info["jax"]["flops"]
        print(f"JAX step pair: {f / 1e9:.1f} GFLOP (XLA cost analysis), {f / pair['jax'] / 1e9:.0f} GFLOP/s achieved "
              f"= {100 * f / pair['jax'] / 1e9 / peaks['jax']:.0f} % of the XLA matmul peak")


if __name__ == "__main__":
    main()
