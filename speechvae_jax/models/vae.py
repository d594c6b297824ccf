"""SpeechVAE: encoder + VAE bottleneck + decoder, configured by the `model` ConfigDict.

`model.encoder.kind` picks the encoder: "dac" (the release's, models/encoder.py) or "stft" (a
frame-rate ConvNeXt encoder on a log-magnitude STFT, models/stft_encoder.py, settings in
`model.encoder.stft`).

`model.decoder.kind` picks the decoder: "bigvgan" (the release's, models/decoder.py), "istft" (a
frame-rate ConvNeXt decoder with an inverse-STFT head, models/istft_decoder.py, settings in
`model.decoder.istft`) or "harmonic" (the same plus a harmonic source driven by a predicted f0,
models/harmonic_decoder.py, settings in `model.decoder.istft` and `model.decoder.harmonic`).

`encode` gives the posterior (mean, sigma); training calls its two halves `encode_features` and
`encode_head` (the adaptive-weighting anchor sits between them) and `decode` through
`apply(..., method=...)`. Parameters: params["encoder"] (the last layer at params["encoder"]["last"])
and params["decoder"].
"""
import math

import flax.linen as nn
import jax.numpy as jnp
from ml_collections import ConfigDict

from speechvae_jax.models import bottleneck
from speechvae_jax.models.decoder import Decoder
from speechvae_jax.models.encoder import Encoder
from speechvae_jax.models.harmonic_decoder import HarmonicDecoder
from speechvae_jax.models.istft_decoder import ISTFTDecoder
from speechvae_jax.models.stft_encoder import STFTEncoder

ENCODER_KINDS = ("dac", "stft")
DECODER_KINDS = ("bigvgan", "istft", "harmonic")
# The module families of runs saved before these `model` keys existed (their config.json lacks them).
SAVED_BEFORE = {"encoder.kind": "dac", "decoder.kind": "bigvgan"}


def encoder_kind(cfg: ConfigDict) -> str:
    """`model.encoder.kind` (SAVED_BEFORE for runs saved before the key existed)."""
    return cfg.encoder.get("kind", SAVED_BEFORE["encoder.kind"])


def decoder_kind(cfg: ConfigDict) -> str:
    """`model.decoder.kind` (SAVED_BEFORE for runs saved before the key existed)."""
    return cfg.decoder.get("kind", SAVED_BEFORE["decoder.kind"])


def _check_stft_rate(section: str, name: str, factor: int, n_fft: int, hop: int) -> None:
    """A frame-rate module's STFT: `factor` (its frames per latent frame) divides the hop, and the
    window spans at least two STFT hops so that windows overlap."""
    if factor < 1 or hop % factor:
        raise ValueError(f"{section}.{name}={factor} must divide model.hop={hop}")
    if n_fft < 2 * (hop // factor):
        raise ValueError(f"{section}.n_fft={n_fft} must be at least twice the STFT hop {hop // factor} "
                         f"(model.hop / {name}) so that windows overlap")


def check_model_config(cfg: ConfigDict) -> None:
    """Raise ValueError naming the key when the encoder/decoder hop disagrees with `model.hop`."""
    kind = decoder_kind(cfg)
    if kind not in DECODER_KINDS:
        raise ValueError(f"model.decoder.kind must be one of {DECODER_KINDS}, got {kind!r}")
    if encoder_kind(cfg) not in ENCODER_KINDS:
        raise ValueError(f"model.encoder.kind must be one of {ENCODER_KINDS}, got {encoder_kind(cfg)!r}")
    if encoder_kind(cfg) == "stft":
        _check_stft_rate("model.encoder.stft", "downsample", cfg.encoder.stft.downsample, cfg.encoder.stft.n_fft,
                         cfg.hop)
    else:
        enc_hop = math.prod(cfg.encoder.strides)
        if enc_hop != cfg.hop:
            raise ValueError(f"model.hop={cfg.hop} but prod(model.encoder.strides)={enc_hop}")
    if kind == "harmonic":
        har = cfg.decoder.harmonic
        if not 0 < har.f0_min < har.f0_max <= cfg.sample_rate / 2:
            raise ValueError(f"model.decoder.harmonic: need 0 < f0_min < f0_max <= sample_rate / 2, got "
                             f"f0_min={har.f0_min}, f0_max={har.f0_max}")
    if kind in ("istft", "harmonic"):
        _check_stft_rate("model.decoder.istft", "upsample", cfg.decoder.istft.upsample, cfg.decoder.istft.n_fft,
                         cfg.hop)
        return
    dec_hop = math.prod(cfg.decoder.upsample_rates)
    if dec_hop != cfg.hop:
        raise ValueError(f"model.hop={cfg.hop} but prod(model.decoder.upsample_rates)={dec_hop}")
    if len(cfg.decoder.upsample_rates) != len(cfg.decoder.upsample_kernel_sizes):
        raise ValueError("model.decoder.upsample_rates and upsample_kernel_sizes differ in length")


def make_encoder(cfg: ConfigDict, dtype, trunk_init: str) -> nn.Module:
    """The encoder module `model.encoder.kind` names (cfg is the `model` section, already checked)."""
    enc = cfg.encoder
    if encoder_kind(cfg) == "stft":
        est = enc.stft
        return STFTEncoder(cfg.hop, est.dim, est.intermediate, est.num_blocks, est.downsample, est.n_fft,
                           cfg.latent_dim, est.kernel_size, enc.get("scale_bias_init", 0.0), dtype)
    return Encoder(enc.d_model, tuple(enc.strides), tuple(enc.dilations), cfg.latent_dim, dtype,
                   trunk_init, enc.get("scale_bias_init", 0.0), enc.get("final_conv", False),
                   enc.get("weight_norm", False))


def make_decoder(cfg: ConfigDict, dtype, trunk_init: str) -> nn.Module:
    """The decoder module `model.decoder.kind` names (cfg is the `model` section, already checked)."""
    dec, kind = cfg.decoder, decoder_kind(cfg)
    ist = dec.get("istft")
    if kind == "istft":
        return ISTFTDecoder(cfg.hop, ist.dim, ist.intermediate, ist.num_blocks, ist.upsample, ist.n_fft,
                            ist.kernel_size, dtype)
    if kind == "harmonic":
        return HarmonicDecoder(cfg.hop, ist.dim, ist.intermediate, ist.num_blocks, ist.upsample, ist.n_fft,
                               cfg.sample_rate, dec.harmonic.f0_min, dec.harmonic.f0_max, ist.kernel_size, dtype)
    return Decoder(dec.initial_channels, tuple(dec.upsample_rates), tuple(dec.upsample_kernel_sizes),
                   tuple(dec.resblock_kernel_sizes), tuple(dec.resblock_dilations), dec.upsample,
                   dtype, trunk_init, dec.get("anti_alias", False), dec.get("weight_norm", False),
                   dec.get("full_lengths", False))


class SpeechVAE(nn.Module):
    cfg: ConfigDict

    def setup(self):
        cfg = self.cfg
        check_model_config(cfg)
        dtype = jnp.dtype(cfg.dtype)
        # Runs saved before these keys existed: release init, no final conv / weight norm / anti-aliasing.
        trunk_init = cfg.get("trunk_init", "release")
        self.encoder = make_encoder(cfg, dtype, trunk_init)
        self.decoder = make_decoder(cfg, dtype, trunk_init)

    def encode_features(self, audio):
        """audio [B, N] -> h [B, ceil(N / hop), C] (compute dtype)."""
        return self.encoder.features(audio)

    def encode_head(self, h):
        """h [B, T, C] -> stats [B, T, 2 * latent_dim] float32 (mean first, then scale)."""
        return self.encoder.head(h)

    def encode(self, audio):
        """audio [B, N] -> (mean, sigma) float32 [B, ceil(N / hop), latent_dim]: the posterior."""
        return bottleneck.posterior(self.encode_head(self.encode_features(audio)))

    def decode(self, z, f0_override=None):
        """z [B, T, latent_dim] -> audio float32 [B, T * hop]; `f0_override` for the "harmonic"
        decoder only (models/harmonic_decoder.py)."""
        if f0_override is None:
            return self.decoder(z)
        return self.decoder(z, f0_override=f0_override)

    def decode_outputs(self, z, f0_override=None):
        """z [B, T, latent_dim] -> {"audio": float32 [B, T * hop]} and, for the "harmonic" decoder,
        "log_f0": its predicted log f0 [B, T * upsample], both from one decoder pass (training)."""
        if decoder_kind(self.cfg) != "harmonic":
            return {"audio": self.decoder(z)}
        audio, log_f0 = self.decoder(z, f0_override=f0_override, outputs="both")
        return {"audio": audio, "log_f0": log_f0}

    def decode_pitch(self, z):
        """z [B, T, latent_dim] -> log f0 [B, T * upsample] (the "harmonic" decoder only)."""
        return self.decoder.pitch(z)

    def __call__(self, audio, rng_sample: bool = False):
        """audio [B, N] -> (reconstruction [B, T * hop], mean [B, T, L], sigma [B, T, L]).

        z is the mean, or a sample drawn with the "sample" RNG stream when `rng_sample`.
        """
        mean, sigma = self.encode(audio)
        z = bottleneck.sample(mean, sigma, self.make_rng("sample")) if rng_sample else mean
        return self.decode(z), mean, sigma
