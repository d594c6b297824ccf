"""Builds the release's components with the PyTorch reference packages and writes their weights and outputs.

Run in a subprocess whose path holds `descript-audio-codec`, `bigvgan`, `auraloss`, `nnAudio` and
`torchaudio` (installed with --no-deps, see docs/models.md): `python reference.py OUT_DIR`. Random
initialisation only; the weight-norm gains, Snake parameters and biases are then randomised too, so
every parameter matters. Writes OUT_DIR/<part>_state.npz (state dict in the release's key layout),
OUT_DIR/<part>_io.npz (inputs and outputs) for part in encoder, decoder, mpd, cqt, mrstft.
"""
import os
import sys
import types

import numpy as np


def _stub_torchaudio_extension():
    """PyPI's torchaudio wheel is a CUDA build: declare its C++ extension absent before the import."""
    ext = types.ModuleType("torchaudio._extension")
    ext._IS_TORCHAUDIO_EXT_AVAILABLE = False
    ext._IS_ALIGN_AVAILABLE = False
    ext.fail_if_no_align = lambda fn: fn
    sys.modules["torchaudio._extension"] = ext


_stub_torchaudio_extension()

import torch  # noqa: E402

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
    from dac.model.dac import Encoder

    class Wrapper(torch.nn.Module):  # Stable Audio Tools' DACEncoderWrapper layout
        def __init__(self):
            super().__init__()
            self.encoder = Encoder(d_model=128, strides=[4, 4, 5, 5], d_latent=2048)
            self.proj_out = torch.nn.Conv1d(2048, 128, kernel_size=1)

        def forward(self, x):
            return self.proj_out(self.encoder(x))

    m = Wrapper().eval()
    _randomise(m, gen)
    audio = 0.3 * torch.randn(1, 1, 4000, generator=gen)
    with torch.no_grad():
        stats = m(audio)
    mean, scale = stats.chunk(2, dim=1)
    sigma = torch.nn.functional.softplus(scale) + 1e-4
    _save(out, "encoder", m, audio=audio[:, 0], mean=mean.transpose(1, 2), sigma=sigma.transpose(1, 2))


def decoder(out, gen):
    from bigvgan.bigvgan import BigVGAN
    from bigvgan.env import AttrDict

    h = AttrDict(num_mels=64, upsample_initial_channel=512, upsample_rates=[5, 5, 4, 4],
                 upsample_kernel_sizes=[10, 10, 8, 8], resblock="1", resblock_kernel_sizes=[3, 7, 11],
                 resblock_dilation_sizes=[[1, 3, 5]] * 3, activation="snakebeta", snake_logscale=True,
                 use_tanh_at_final=True, use_bias_at_final=True)
    m = BigVGAN(h).eval()
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
    from bigvgan.discriminators import MultiPeriodDiscriminator, MultiScaleSubbandCQTDiscriminator
    from bigvgan.env import AttrDict

    audio = 0.3 * torch.randn(1, 1, 8192, generator=gen)
    mpd = MultiPeriodDiscriminator(AttrDict(mpd_reshapes=[2, 3, 5, 7, 11], use_spectral_norm=False,
                                            discriminator_channel_mult=1)).eval()
    _randomise(mpd, gen)
    _save(out, "mpd", mpd, **_disc_io(mpd, audio))
    cqt = MultiScaleSubbandCQTDiscriminator(AttrDict(
        sampling_rate=16000, cqtd_filters=32, cqtd_max_filters=1024, cqtd_filters_scale=1,
        cqtd_dilations=[1, 2, 4], cqtd_hop_lengths=[512, 256, 256], cqtd_n_octaves=[8, 8, 8],
        cqtd_bins_per_octaves=[24, 36, 48])).eval()
    _randomise(cqt, gen)
    _save(out, "cqt", cqt, **_disc_io(cqt, audio))


def mrstft(out, gen):
    import auraloss

    sizes = [2048, 1024, 512, 256, 128, 64, 32]
    loss = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                 win_lengths=sizes, perceptual_weighting=True, sample_rate=16000)
    t = torch.arange(8000) / 16000
    y = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.05 * torch.randn(8000, generator=gen))[None, None]
    x = y + 0.05 * torch.randn(y.shape, generator=gen)
    np.savez(os.path.join(out, "mrstft_io.npz"), x=x[:, 0].numpy(), y=y[:, 0].numpy(),
             loss=loss(x, y).numpy())


if __name__ == "__main__":
    out_dir = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    for build in (encoder, decoder, discriminators, mrstft):
        build(out_dir, g)
