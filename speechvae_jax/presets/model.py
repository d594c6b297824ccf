"""`model_config(size)` and `loss_config(size)` for size in {"tiny", "paper"}.

"paper" is the release configuration (METHOD.md), layer for layer: DAC encoder with its closing k=3
conv, weight normalisation, anti-aliased SnakeBeta, bigvgan discriminators with nnAudio's CQT; "tiny"
keeps 16 kHz / hop 400 (40 Hz) / 64-d latents with far fewer channels and none of those switches, for
training on a 2-core CPU.
"""
from ml_collections import ConfigDict

SIZES = ("tiny", "paper")


def _check(size: str) -> None:
    if size not in SIZES:
        raise ValueError(f"unknown preset size {size!r}; expected one of {SIZES}")


def discriminator_config(size: str) -> ConfigDict:
    """Sub-discriminator settings; each has `enabled`. Paper: MPD + sub-band CQT (STFT one off)."""
    _check(size)
    paper = size == "paper"
    return ConfigDict({
        "weight_norm": paper,   # the MPD / CQT layers the bigvgan package weight-normalises
        "mpd": {"enabled": True, "periods": (2, 3, 5, 7, 11),
                "channels": (32, 128, 512, 1024, 1024) if paper else (8, 16, 32, 64, 64)},
        "cqt": {"enabled": True, "sample_rate": 16000, "hop_lengths": (512, 256, 256), "n_octaves": 8,
                "bins_per_octave": (24, 36, 48), "filters": 32 if paper else 8, "max_filters": 1024,
                "filters_scale": 1, "dilations": (1, 2, 4), "fmin": 32.7,
                # "release": torchaudio 2x resampling + nnAudio CQT2010v2 as bigvgan; "multirate": ours
                "front_end": "release" if paper else "multirate"},
        "stft": {"enabled": False, "fft_sizes": (2048, 1024, 512), "channels": 32 if paper else 8},
    })


def model_config(size: str) -> ConfigDict:
    """The `model` ConfigDict: latent_dim, hop, sample_rate, dtype, encoder, decoder, discriminators."""
    _check(size)
    paper = size == "paper"
    return ConfigDict({
        "latent_dim": 64,
        "hop": 400,
        "sample_rate": 16000,
        "dtype": "float32",
        "trunk_init": "release" if paper else "fan_in",   # models/layers.py TRUNK_INITS
        "encoder": {"kind": "dac",   # or "stft" (models/vae.py ENCODER_KINDS)
                    # DAC (kind "dac")
                    "d_model": 128 if paper else 8, "strides": (4, 4, 5, 5), "dilations": (1, 3, 9),
                    # initial posterior sigma = softplus(scale_bias_init) + 1e-4: 0.69 (release) / 0.049
                    "scale_bias_init": 0.0 if paper else -3.0,
                    # DAC's closing conv k=3 (2048 -> 2048) before `last`; weight norm on every conv but `last`
                    "final_conv": paper, "weight_norm": paper,
                    # log-magnitude STFT + frame-rate ConvNeXt (kind "stft"): STFT hop = hop / downsample
                    "stft": {"dim": 256, "intermediate": 768, "num_blocks": 6, "kernel_size": 7,
                             "downsample": 2, "n_fft": 800}},
        "decoder": {"kind": "bigvgan",   # or "istft", "harmonic" (models/vae.py DECODER_KINDS)
                    # BigVGAN (kind "bigvgan")
                    "initial_channels": 512 if paper else 128, "upsample_rates": (5, 5, 4, 4),
                    "upsample_kernel_sizes": (10, 10, 8, 8),
                    "resblock_kernel_sizes": (3, 7, 11) if paper else (3, 7),
                    "resblock_dilations": (1, 3, 5), "upsample": "subpixel",
                    # BigVGAN's anti-aliased SnakeBeta (2x up/down Kaiser-sinc) and weight-normed convs
                    "anti_alias": paper, "weight_norm": paper,
                    # upsamplers keep BigVGAN's T * u + u % 2 outputs; the waveform is cropped to T * hop
                    "full_lengths": paper,
                    # frame-rate ConvNeXt + inverse STFT (kind "istft"): STFT hop = hop / upsample
                    "istft": {"dim": 512 if paper else 256, "intermediate": 1536 if paper else 768,
                              "num_blocks": 8, "kernel_size": 7, "upsample": 2, "n_fft": 800},
                    # kind "harmonic": the istft settings plus the range of its predicted f0 (Hz)
                    "harmonic": {"f0_min": 60.0, "f0_max": 500.0}},
        "discriminators": discriminator_config(size),
    })


def loss_config(size: str) -> ConfigDict:
    """Loss weights and MR-STFT settings (the same at both sizes: the release's)."""
    _check(size)
    return ConfigDict({
        "stft_weight": 1.0,
        "time_l1_weight": 0.0,
        "adversarial_weight": 0.1,
        "feature_matching_weight": 2.0,
        "kl_weight": 1e-3,
        # the harmonic decoder's f0 head: L1 on log f0 against YIN on the target, over voiced frames;
        # teacher_forcing: its excitation runs on the target's f0 (voiced frames) in training
        "pitch": {"weight": 1.0, "yin_threshold": 0.3, "frame_length": 1024, "teacher_forcing": True},
        "stft": {"fft_sizes": (2048, 1024, 512, 256, 128, 64, 32), "hop_ratio": 0.25,
                 "perceptual_weighting": True},
    })
