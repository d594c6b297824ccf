"""Where the training step's time goes: each component of the release model, forward + backward,
in eager PyTorch and in JAX, alternately in one run, each framework in its own process (`bench.sides`;
prints a table; no assertions).

  python -m speechvae_jax.bench.components [--batch 1] [--crop 32768] [--repeats 3] [--warmup 2] [--threads 2]
                                            [--wrt both|params|input] [--grouped]

Components at the paper preset's shapes, random weights: the encoder (audio -> mean and scale), the
BigVGAN decoder (latent -> audio), the multi-period discriminator and the sub-band CQT discriminator
(both on a real and a fake batch, as a step sees them) and the A-weighted multi-resolution STFT loss.
Each is timed as the gradient of the sum of squares of its outputs (the loss, for the MR-STFT) w.r.t.
its parameters and its input (what a train step asks of it; the real half of a discriminator batch
and the loss's reference get no gradient, as in a step; `--wrt` keeps one of the two), and as the
forward alone. PyTorch side: `bench.reference`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.bench import reference
from speechvae_jax.bench.peer import cpu_line, peer_arguments, print_table
from speechvae_jax.bench.sides import alternate
from speechvae_jax.models.discriminators import Discriminators
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train.branches import stft_loss

WRT = {"both": (0, 1), "params": 0, "input": 1}  # jax.grad argnums of fn(params, x, const)


def _squares(tree) -> jax.Array:
    return sum(jnp.sum(jnp.square(jnp.asarray(v, jnp.float32))) for v in jax.tree_util.tree_leaves(tree))


def jax_components(batch: int, crop: int, wrt: str = "both", size: str = "paper") -> dict:
    """{name: (forward fn, forward+backward fn, input array)} of a preset (`none` variant) in JAX;
    each fn returns its result (the forward's scalar, the backward's gradients)."""
    c = load_config_file(size, "none")
    vae = SpeechVAE(c.model)
    key = jax.random.PRNGKey(0)
    audio = jnp.asarray(0.1 * np.random.default_rng(0).standard_normal((batch, crop)), jnp.float32)
    vae_params = jax.jit(vae.init)(key, audio[:, :400])["params"]
    z = jnp.zeros((batch, crop // c.model.hop, c.model.latent_dim), jnp.float32) + 0.1

    def sub_discriminator(which: str):
        dcfg = c.model.discriminators.copy_and_resolve_references()
        for name in ("mpd", "cqt", "stft"):
            dcfg[name].enabled = name == which
        return Discriminators(dcfg)

    none = jnp.zeros(())
    parts = {  # name: (fn(params, x, const), params, x, const); const is an argument so XLA cannot fold it
        "encoder": (lambda p, x, _: _squares(vae.apply({"params": p}, x, method=vae.encode)), vae_params, audio, none),
        "decoder": (lambda p, x, _: _squares(vae.apply({"params": p}, x, method=vae.decode)), vae_params, z, none),
    }
    for which, label in (("mpd", "MPD (real + fake)"), ("cqt", "sub-band CQT (real + fake)")):
        d = sub_discriminator(which)
        params = jax.jit(d.init)(key, jnp.concatenate([audio, audio]))["params"]
        parts[label] = (lambda p, x, real, d=d: _squares(d.apply({"params": p}, jnp.concatenate([real, x]))),
                        params, 0.5 * audio, audio)
    parts["MR-STFT loss (A-weighted)"] = (lambda p, x, ref: stft_loss(c.loss, x, ref), {}, 0.5 * audio, audio)
    out = {}
    for name, (fn, params, x, const) in parts.items():
        fwd = jax.jit(fn)
        grad = jax.jit(jax.grad(fn, argnums=WRT[wrt]))
        out[name] = (lambda x, f=fwd, p=params, c=const: jax.block_until_ready(f(p, x, c)),
                     lambda x, g=grad, p=params, c=const: jax.block_until_ready(g(p, x, c)), x)
    return out


def torch_components(batch: int, crop: int, threads: int, wrt: str = "both") -> dict:
    """{name: (forward fn, forward+backward fn, input tensor)} of the release's modules in eager PyTorch."""
    import torch

    reference.enable()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    audio = torch.from_numpy(np.asarray(0.1 * np.random.default_rng(0).standard_normal((batch, 1, crop)),
                                        np.float32))
    enc, dec, mpd, cqt, mrstft = (reference.encoder(), reference.decoder(), reference.mpd(), reference.cqt(),
                                  reference.mrstft_loss())
    modules = (enc, dec, mpd, cqt)
    for module in modules:
        module.requires_grad_(wrt != "input")
    z = torch.zeros(batch, 64, crop // 400) + 0.1

    def squares(out) -> torch.Tensor:
        if isinstance(out, torch.Tensor):
            return (out ** 2).sum()
        return sum(squares(o) for o in out)

    parts = {
        "encoder": (lambda x: squares(enc(x)), audio),
        "decoder": (lambda x: squares(dec(x)), z),
        "MPD (real + fake)": (lambda x: squares(mpd(audio, x)), 0.5 * audio),
        "sub-band CQT (real + fake)": (lambda x: squares(cqt(audio, x)), 0.5 * audio),
        "MR-STFT loss (A-weighted)": (lambda x: mrstft(x, audio), 0.5 * audio),
    }
    out = {}
    for name, (fn, x) in parts.items():
        def forward(x, fn=fn):
            with torch.no_grad():
                fn(x)

        def backward(x, fn=fn):
            for module in modules:
                module.zero_grad(set_to_none=True)
            x = x.detach().requires_grad_(wrt != "params")
            loss = fn(x)
            if loss.requires_grad:  # the MR-STFT loss has no parameters
                loss.backward()

        out[name] = (forward, backward, x)
    return out


def _flat(components: dict) -> dict:
    """{name: (forward, backward, x)} -> {"name, forward": (fn, x), "name, forward + backward": (fn, x)}."""
    return {f"{name}, {mode}": (fns[i], fns[2]) for name, fns in components.items()
            for i, mode in ((0, "forward"), (1, "forward + backward"))}


def torch_side(batch: int, crop: int, threads: int, wrt: str):
    """The PyTorch worker's parts (`bench.sides` builder)."""
    import torch

    return _flat(torch_components(batch, crop, threads, wrt)), {"version": torch.__version__}


def jax_side(batch: int, crop: int, threads: int, wrt: str):
    """The JAX worker's parts (`bench.sides` builder); XLA:CPU uses every core whatever `threads` says."""
    return _flat(jax_components(batch, crop, wrt)), {"version": jax.__version__}


def main() -> None:
    ap = peer_arguments()
    ap.add_argument("--wrt", choices=tuple(WRT), default="both",
                    help="the backward's gradients: w.r.t. parameters and input (a train step), or one of them")
    args = ap.parse_args()
    print(f"cpu: {cpu_line()}\nbatch {args.batch} x {args.crop}, PyTorch on {args.threads} threads, backward "
          f"w.r.t. {args.wrt}; each framework in its own process, {'grouped' if args.grouped else 'alternating'} calls")
    medians, _, info = alternate({"torch": "speechvae_jax.bench.components:torch_side",
                                      "jax": "speechvae_jax.bench.components:jax_side"},
                                     dict(batch=args.batch, crop=args.crop, threads=args.threads, wrt=args.wrt),
                                     args.repeats, args.grouped, args.warmup)
    print(f"jax {info['jax']['version']}, torch {info['torch']['version']}")
    print_table("component", medians)


if __name__ == "__main__":
    main()
