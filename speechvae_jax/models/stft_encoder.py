"""Frame-rate encoder on a log-magnitude STFT (mirror of the iSTFT decoder): audio [B, N] -> stats [B, T, 2L].

A centred Hann STFT with hop `hop // downsample` (float32), log magnitude floored at 1e-5, a linear
embedding to `dim`, LayerNorm, half the ConvNeXt blocks at the STFT frame rate, a strided conv (k = 2 *
downsample) to the latent rate, the other half of the blocks, LayerNorm: the features h. The last layer
`last` (nn.Dense, the adaptive-weighting anchor) maps h to mean and scale, as in the DAC encoder. Every
layer runs at a frame rate, so a step costs a fraction of the sample-rate DAC stack at tiny widths.
"""
import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from speechvae_jax.dsp.spectral import magnitude, stft
from speechvae_jax.models.encoder import posterior_bias_init
from speechvae_jax.models.istft_decoder import ConvNeXtBlock
from speechvae_jax.models.layers import conv1d

LOG_FLOOR = 1e-5  # magnitudes below this are clipped before the log (-11.5)


class STFTEncoder(nn.Module):
    """`model.encoder.kind = "stft"`: `features(audio [B, N]) -> [B, ceil(N / hop), dim]`, `head(h) -> [B, T, 2L]`.

    STFT frame f (hop `hop // downsample`) is centred on sample f * hop // downsample; the strided conv
    merges each run of `downsample` frames into latent frame t.
    """
    hop: int
    dim: int
    intermediate: int
    num_blocks: int
    downsample: int
    n_fft: int
    latent_dim: int
    kernel_size: int = 7
    scale_bias_init: float = 0.0
    dtype: Any = jnp.float32

    def setup(self):
        half = self.num_blocks // 2
        scale = 1.0 / max(self.num_blocks, 1)
        self.embed = nn.Dense(self.dim, dtype=self.dtype, param_dtype=jnp.float32)
        self.norm_in = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32)
        self.blocks_fast = [ConvNeXtBlock(self.intermediate, self.kernel_size, scale, self.dtype)
                            for _ in range(half)]
        k = 2 * self.downsample
        self.down = conv1d(self.dim, k, stride=self.downsample,
                           padding=[(self.downsample // 2, self.downsample - self.downsample // 2)], dtype=self.dtype)
        self.blocks_slow = [ConvNeXtBlock(self.intermediate, self.kernel_size, scale, self.dtype)
                            for _ in range(self.num_blocks - half)]
        self.norm_out = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, param_dtype=jnp.float32)
        self.last = nn.Dense(2 * self.latent_dim, bias_init=posterior_bias_init(self.scale_bias_init),
                             dtype=self.dtype, param_dtype=jnp.float32)

    def features(self, audio):
        if audio.ndim != 2:
            raise ValueError(f"encoder expects audio [B, N], got shape {audio.shape}")
        num_frames = math.ceil(audio.shape[1] / self.hop)
        x = jnp.pad(audio.astype(jnp.float32), ((0, 0), (0, num_frames * self.hop - audio.shape[1])))
        spec = stft(x, self.n_fft, self.hop // self.downsample)[:, : num_frames * self.downsample]
        x = jnp.log(jnp.maximum(magnitude(spec), LOG_FLOOR))
        x = self.norm_in(self.embed(x.astype(self.dtype)))
        for block in self.blocks_fast:
            x = block(x)
        x = self.down(x)
        for block in self.blocks_slow:
            x = block(x)
        return self.norm_out(x)

    def head(self, h):
        return self.last(h).astype(jnp.float32)
