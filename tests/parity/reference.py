"""Builds the release's components with the PyTorch reference packages and writes their weights and outputs.

Run in a subprocess (the reference packages then never meet the test process):
`python reference.py OUT_DIR`, with the packages where `speechvae_jax.bench.reference` finds them. Random
initialisation only; the weight-norm gains, Snake parameters and biases are then randomised too, so
every parameter matters. Writes OUT_DIR/<part>_state.npz (state dict in the release's key layout),
OUT_DIR/<part>_io.npz (inputs and outputs) for part in encoder, decoder, mpd, cqt, mrstft.
"""
import os
import sys

import numpy as np
import torch

from speechvae_jax.bench import reference

torch.set_num_threads(2)


def _randomise(module, gen):
    """Every float parameter perturbed: gains x U(0.5, 1.5), other 1-d params + U(-0.2, 0.2)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.mul_(0.5 + torch.rand(p.shape, generator=gen))
            elif p.ndim <= 1 or name.endswith(("alpha", "beta")):
                p.add_(0.4 * torch.rand(p.shape, generator=gen) - 0.2)


def _save(out, part, module, **io):
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    np.savez(os.path.join(out, f"{part}_state.npz"), **state)
    np.savez(os.path.join(out, f"{part}_io.npz"), **{k: np.asarray(v) for k, v in io.items()},
             num_params=sum(p.numel() for p in module.parameters()))


def encoder(out, gen):
    m = reference.encoder()
    _randomise(m, gen)
    audio = 0.3 * torch.randn(1, 1, 4000, generator=gen)
    with torch.no_grad():
        stats = m(audio)
    mean, scale = stats.chunk(2, dim=1)
    sigma = torch.nn.functional.softplus(scale) + 1e-4
    _save(out, "encoder", m, audio=audio[:, 0], mean=mean.transpose(1, 2), sigma=sigma.transpose(1, 2))


def decoder(out, gen):
    m = reference.decoder()
    _randomise(m, gen)
    z = torch.randn(1, 64, 5, generator=gen)
    with torch.no_grad():
        audio = m(z)
    _save(out, "decoder", m, z=z.transpose(1, 2), audio=audio[:, 0])


def _disc_io(m, audio):
    with torch.no_grad():
        logits, fmaps = [], []
        for d in m.discriminators:
            lg, fm = d(audio)
            logits.append(lg)
            fmaps.append(fm)
    io = {"audio": audio[:, 0]}
    for k, (lg, fm) in enumerate(zip(logits, fmaps)):
        io[f"logits_{k}"] = lg
        for i, f in enumerate(fm):
            io[f"fmap_{k}_{i}"] = f.permute(0, 2, 3, 1)  # [B, C, H, W] -> channels last
    return io


def discriminators(out, gen):
    audio = 0.3 * torch.randn(1, 1, 8192, generator=gen)
    mpd = reference.mpd()
    _randomise(mpd, gen)
    _save(out, "mpd", mpd, **_disc_io(mpd, audio))
    cqt = reference.cqt()
    _randomise(cqt, gen)
    _save(out, "cqt", cqt, **_disc_io(cqt, audio))


def mrstft(out, gen):
    loss = reference.mrstft_loss()
    t = torch.arange(8000) / 16000
    y = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(8000, generator=gen))[None, None]
    x = y + 0.05 * torch.randn(y.shape, generator=gen)
    np.savez(os.path.join(out, "mrstft_io.npz"), x=x[:, 0].numpy(), y=y[:, 0].numpy(),
             loss=loss(x, y).numpy())


if __name__ == "__main__":
    reference.enable()
    out_dir = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    for build in (encoder, decoder, discriminators, mrstft):
        build(out_dir, g)
