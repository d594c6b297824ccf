"""The release's PyTorch components, built from the reference packages (parity tests, peer benchmark).

The packages (`descript-audio-codec`, `descript-audiotools`, `bigvgan`, `auraloss`, `nnAudio`,
`torchaudio` and a few small pure-Python dependencies) are installed with `--no-deps` into a folder
outside the project venv (default `$VENV/ref-site`, override with `SPEECHVAE_REF_SITE`);
`enable(site)` puts it on the path after declaring torchaudio's C++ extension absent (PyPI's
torchaudio wheel is a CUDA build whose extension does not load with the CPU torch). Builders take
the release's settings (METHOD.md) and return eval-mode modules at random weights.
"""
from __future__ import annotations

import os
import sys
import types

ENCODER = {"d_model": 128, "strides": [4, 4, 5, 5], "d_latent": 2048, "latent_dim": 128}
DECODER = {"num_mels": 64, "upsample_initial_channel": 512, "upsample_rates": [5, 5, 4, 4],
           "upsample_kernel_sizes": [10, 10, 8, 8], "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
           "resblock_dilation_sizes": [[1, 3, 5]] * 3, "activation": "snakebeta", "snake_logscale": True,
           "use_tanh_at_final": True, "use_bias_at_final": True}
MPD = {"mpd_reshapes": [2, 3, 5, 7, 11], "use_spectral_norm": False, "discriminator_channel_mult": 1}
CQT = {"sampling_rate": 16000, "cqtd_filters": 32, "cqtd_max_filters": 1024, "cqtd_filters_scale": 1,
       "cqtd_dilations": [1, 2, 4], "cqtd_hop_lengths": [512, 256, 256], "cqtd_n_octaves": [8, 8, 8],
       "cqtd_bins_per_octaves": [24, 36, 48]}
MRSTFT_SIZES = [2048, 1024, 512, 256, 128, 64, 32]


def default_site() -> str:
    """`SPEECHVAE_REF_SITE`, else `ref-site` inside the running venv."""
    return os.environ.get("SPEECHVAE_REF_SITE") or os.path.join(sys.prefix, "ref-site")


def enable(site: str | None = None) -> str:
    """Make the reference packages importable (idempotent); returns the folder. Raises if it is missing."""
    site = site or default_site()
    if not os.path.isdir(os.path.join(site, "bigvgan")):
        raise FileNotFoundError(f"reference packages not installed in {site} (docs/models.md, Parity)")
    if "torchaudio._extension" not in sys.modules:
        ext = types.ModuleType("torchaudio._extension")
        ext._IS_TORCHAUDIO_EXT_AVAILABLE = False
        ext._IS_ALIGN_AVAILABLE = False
        ext.fail_if_no_align = lambda fn: fn
        sys.modules["torchaudio._extension"] = ext
    if site not in sys.path:
        sys.path.append(site)
    return site


def encoder():
    """Stable Audio Tools' DACEncoderWrapper layout: `.encoder` (DAC Encoder) then `.proj_out` (1x1 conv)."""
    import torch
    from dac.model.dac import Encoder

    class DACEncoderWrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Encoder(d_model=ENCODER["d_model"], strides=ENCODER["strides"],
                                   d_latent=ENCODER["d_latent"])
            self.proj_out = torch.nn.Conv1d(ENCODER["d_latent"], ENCODER["latent_dim"], kernel_size=1)

        def forward(self, x):
            return self.proj_out(self.encoder(x))

    return DACEncoderWrapper().eval()


def decoder():
    from bigvgan.bigvgan import BigVGAN
    from bigvgan.env import AttrDict

    return BigVGAN(AttrDict(DECODER)).eval()


def mpd():
    from bigvgan.discriminators import MultiPeriodDiscriminator
    from bigvgan.env import AttrDict

    return MultiPeriodDiscriminator(AttrDict(MPD)).eval()


def cqt():
    from bigvgan.discriminators import MultiScaleSubbandCQTDiscriminator
    from bigvgan.env import AttrDict

    return MultiScaleSubbandCQTDiscriminator(AttrDict(CQT)).eval()


def mrstft_loss():
    import auraloss

    return auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=MRSTFT_SIZES, hop_sizes=[n // 4 for n in MRSTFT_SIZES],
                                                 win_lengths=MRSTFT_SIZES, perceptual_weighting=True,
                                                 sample_rate=16000)
