"""The PyTorch peer, side by side: the release model in eager PyTorch against the paper preset in JAX.

  python -m speechvae_jax.bench.peer [--batch 1] [--crop 32768] [--repeats 3] [--threads 2] [--flops]

Both sides are built at random weights in one process and timed alternately (PyTorch, then JAX, per
repeat; medians printed): the generator step with the discriminators' forward for the GAN losses
(the `none` variant: MR-STFT + KL + LSGAN + feature matching, no teacher), the discriminator step
(MPD + sub-band CQT), the encoder alone (export), a WavLM-Large-shaped teacher forward (PyTorch
`transformers` vs this project's Flax port), float32 matmul peaks, and with `--flops` the achieved
GFLOP/s of the JAX step pair from XLA's cost analysis. Prints `lscpu` model and vector flags first.
PyTorch side: the reference packages (`bench.reference`), AdamW(1e-4, betas 0.8/0.99) as the release.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.bench import reference
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


def export_pair(threads: int):
    """(PyTorch encoder forward, JAX encoder forward) alone: the release encoder vs the paper preset's."""
    import torch

    reference.enable()
    torch.set_num_threads(threads)
    enc = reference.encoder()
    vae = SpeechVAE(load_config_file("paper", "none").model)
    params = jax.jit(vae.init)(jax.random.PRNGKey(0), jnp.zeros((1, 400)))["params"]
    encode = jax.jit(lambda p, a: vae.apply({"params": p}, a, method=vae.encode))

    def torch_fwd(x):
        with torch.inference_mode():
            enc(x)

    return torch_fwd, lambda a: jax.block_until_ready(encode(params, a))


def teacher_pair(crop: int, threads: int):
    """(PyTorch transformers WavLM-Large forward, our Flax port's forward), random weights."""
    import torch
    from transformers import WavLMConfig, WavLMModel

    torch.set_num_threads(threads)
    hf = WavLMModel(WavLMConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                intermediate_size=4096, feat_extract_norm="layer", do_stable_layer_norm=True,
                                conv_bias=True)).eval()
    ours, _ = teacher_for("paper")
    fwd = jax.jit(ours.apply_fn)

    def torch_fwd(x):
        with torch.inference_mode():
            hf(torch.from_numpy(x), output_hidden_states=True)

    return torch_fwd, lambda x: jax.block_until_ready(fwd(ours.params, jnp.asarray(x), None))


def matmul_peaks(threads: int, n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """float32 n^3 matmul GFLOP/s: (PyTorch, XLA)."""
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(n, n)
    mm = jax.jit(jnp.dot)
    x = jnp.asarray(a.numpy())
    jax.block_until_ready(mm(x, x))
    out = []
    for fn in (lambda: torch.mm(a, a), lambda: jax.block_until_ready(mm(x, x))):
        fn()
        t = [_timed(fn) for _ in range(repeats)]
        out.append(2 * n ** 3 / min(t) / 1e9)
    return out[0], out[1]


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def alternate(pairs: dict, inputs: dict, repeats: int) -> dict:
    """{name: (torch median s, jax median s)}; one warm-up call each (JAX compiles there), then
    PyTorch and JAX alternate within every repeat."""
    times = {name: ([], []) for name in pairs}
    for name, (tf, jf) in pairs.items():
        t0 = time.perf_counter()
        jf(inputs[name][1])
        print(f"  {name}: JAX compile + first call {time.perf_counter() - t0:.1f} s", flush=True)
        tf(inputs[name][0])
    for _ in range(repeats):
        for name, (tf, jf) in pairs.items():
            times[name][0].append(_timed(tf, inputs[name][0]))
            times[name][1].append(_timed(jf, inputs[name][1]))
    return {k: (float(np.median(a)), float(np.median(b))) for k, (a, b) in times.items()}


def peer_arguments() -> argparse.ArgumentParser:
    """The flags of every PyTorch-vs-JAX benchmark: batch, crop (samples), repeats, PyTorch threads."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--crop", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def main() -> None:
    import torch

    ap = peer_arguments()
    ap.add_argument("--flops", action="store_true", help="also compile the step pair for XLA's FLOP count")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--export-only", action="store_true", help="only the encoder forward (little memory)")
    args = ap.parse_args()
    print(f"cpu: {cpu_line()}\njax {jax.__version__} {jax.devices()}, torch {torch.__version__}, "
          f"batch {args.batch} x {args.crop}, {args.threads} threads")
    t_peak, j_peak = matmul_peaks(args.threads)
    print(f"float32 matmul 2048^3: PyTorch {t_peak:.0f} GFLOP/s, XLA {j_peak:.0f} GFLOP/s")
    audio = np.asarray(0.1 * np.random.default_rng(0).standard_normal((args.batch, args.crop)), np.float32)
    ta, ja = torch.from_numpy(audio)[:, None], jnp.asarray(audio)
    if args.export_only:
        pairs = {"encoder forward (export)": export_pair(args.threads)}
    else:
        tg, td, te = torch_steps(args.threads)
        jg, jd, je, jflops = jax_steps(args.batch, args.crop)
        pairs = {"generator step (GAN forward, no teacher)": (tg, jg), "discriminator step": (td, jd),
                 "encoder forward (export)": (te, je)}
    inputs = {k: (ta, ja) for k in pairs}
    if not (args.no_teacher or args.export_only):
        pairs["WavLM-Large forward"] = teacher_pair(args.crop, args.threads)
        inputs["WavLM-Large forward"] = (audio, audio)
    res = alternate(pairs, inputs, args.repeats)
    print("\n| step | PyTorch eager (s) | JAX (s) | JAX speed / PyTorch |\n|---|---|---|---|")
    for name, (t, j) in res.items():
        print(f"| {name} | {t:.3f} | {j:.3f} | {t / j:.2f}x |")
    audio_s, export = args.batch * args.crop / 16000, res["encoder forward (export)"]
    print(f"encoder export: PyTorch {audio_s / export[0]:.2f}, JAX {audio_s / export[1]:.2f} audio-seconds/s")
    if args.export_only:
        return
    keys = list(res)[:2]
    pair_t, pair_j = sum(res[k][0] for k in keys), sum(res[k][1] for k in keys)
    print(f"| generator + discriminator pair | {pair_t:.3f} | {pair_j:.3f} | {pair_t / pair_j:.2f}x |")
    if args.flops:
        f = jflops(ja)
        print(f"JAX step pair: {f / 1e9:.1f} GFLOP (XLA cost analysis), {f / pair_j / 1e9:.0f} GFLOP/s achieved "
              f"= {100 * f / pair_j / 1e9 / j_peak:.0f} % of the XLA matmul peak")


if __name__ == "__main__":
    main()
