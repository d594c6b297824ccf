"""SpeechVAE: DAC-style encoder + VAE bottleneck + BigVGAN decoder, configured by the `model` ConfigDict.

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


def check_model_config(cfg: ConfigDict) -> None:
    """Raise ValueError naming the key when the encoder/decoder hop disagrees with `model.hop`."""
    enc_hop = math.prod(cfg.encoder.strides)
    dec_hop = math.prod(cfg.decoder.upsample_rates)
    if enc_hop != cfg.hop or dec_hop != cfg.hop:
        raise ValueError(f"model.hop={cfg.hop} but prod(model.encoder.strides)={enc_hop} and "
                         f"prod(model.decoder.upsample_rates)={dec_hop}")
    if len(cfg.decoder.upsample_rates) != len(cfg.decoder.upsample_kernel_sizes):
        raise ValueError("model.decoder.upsample_rates and upsample_kernel_sizes differ in length")


class SpeechVAE(nn.Module):
    cfg: ConfigDict

    def setup(self):
        cfg = self.cfg
        check_model_config(cfg)
        dtype = jnp.dtype(cfg.dtype)
        # Runs saved before these keys existed: release init, no final conv / weight norm / anti-aliasing.
        trunk_init = cfg.get("trunk_init", "release")
        enc = cfg.encoder
        self.encoder = Encoder(enc.d_model, tuple(enc.strides), tuple(enc.dilations), cfg.latent_dim, dtype,
                               trunk_init, enc.get("scale_bias_init", 0.0), enc.get("final_conv", False),
                               enc.get("weight_norm", False))
        dec = cfg.decoder
        self.decoder = Decoder(dec.initial_channels, tuple(dec.upsample_rates), tuple(dec.upsample_kernel_sizes),
                               tuple(dec.resblock_kernel_sizes), tuple(dec.resblock_dilations), dec.upsample,
                               dtype, trunk_init, dec.get("anti_alias", False), dec.get("weight_norm", False),
                               dec.get("full_lengths", False))

    def encode_features(self, audio):
        """audio [B, N] -> h [B, ceil(N / hop), C] (compute dtype)."""
        return self.encoder.features(audio)

    def encode_head(self, h):
        """h [B, T, C] -> stats [B, T, 2 * latent_dim] float32 (mean first, then scale)."""
        return self.encoder.head(h)

    def encode(self, audio):
        """audio [B, N] -> (mean, sigma) float32 [B, ceil(N / hop), latent_dim]: the posterior."""
        return bottleneck.posterior(self.encode_head(self.encode_features(audio)))

    def decode(self, z):
        """z [B, T, latent_dim] -> audio float32 [B, T * hop]."""
        return self.decoder(z)

    def __call__(self, audio, rng_sample: bool = False):
        """audio [B, N] -> (reconstruction [B, T * hop], mean [B, T, L], sigma [B, T, L]).

        z is the mean, or a sample drawn with the "sample" RNG stream when `rng_sample`.
        """
        mean, sigma = self.encode(audio)
        z = bottleneck.sample(mean, sigma, self.make_rng("sample")) if rng_sample else mean
        return self.decode(z), mean, sigma
