"""Source-filter decoder (`model.decoder.kind = "harmonic"`): the iSTFT decoder plus a harmonic source.

The frame-rate trunk of `istft_decoder` predicts, per STFT frame: log f0 (bounded to [f0_min, f0_max]),
a real filter over the bins, and a magnitude and phase per bin (the aperiodic part, as the iSTFT
decoder). The f0 track, linearly interpolated to the sample rate, drives a band-limited harmonic
excitation: every harmonic below Nyquist at equal amplitude, in closed form (a Dirichlet kernel),

  e(n) = (sum_{h=1}^{K-1} cos(h theta) + (R - K) cos(K theta)) / sqrt(R),
  theta = 2 pi sum_{m<=n} f0(m) / sr,   R = sr / 2 / f0(n),   K = floor(R),

the top harmonic fading out as it nears Nyquist so that e is continuous in f0. Its STFT times the
filter, plus the aperiodic bins, goes through one inverse STFT. So the output is voiced wherever the
filter lets harmonics through, and their spacing is the predicted f0, which a regression loss alone
does not learn at a small budget (docs/training.md).

f0 is trained by a supervised pitch loss against YIN on the target (`dsp.pitch`, the "pitch" branch
of `train.branches`); the excitation sees f0 through a stop-gradient, in training (with
`loss.pitch.teacher_forcing`) the target's own f0 on its voiced frames. The excitation's phase is a
running sum from the first sample, so a decode is canonical up to that phase: decoding a long
utterance in pieces (export's stitching beyond the largest bucket) restarts it at each piece.
"""
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.spectral import stft
from speechvae_jax.models.istft_decoder import MAX_LOG_MAGNITUDE, ZERO_BINS, frame_trunk, magnitude_phase, synthesize

HARMONIC_FILTER_BIAS = -3.0   # the harmonic filter starts at e^-3, below the aperiodic part


def harmonic_excitation(f0, sample_rate: int):
    """f0 Hz [B, N] (> 0) -> band-limited equal-amplitude harmonic excitation float32 [B, N], power 1/2."""
    f0 = jnp.asarray(f0, jnp.float32)
    # the running phase in cycles, kept in [0, 1) at every partial sum so that float32 keeps its
    # precision on long inputs (a plain cumsum loses ~1e-5 cycles per 10 s, times K harmonics)
    cycles = jax.lax.associative_scan(lambda a, b: jnp.mod(a + b, 1.0), f0 / sample_rate, axis=-1)
    # theta in [-pi, pi): the kernel's peak at theta = 0 is then computed from a small, exact theta
    theta = 2.0 * np.pi * (cycles - jnp.round(cycles))
    r = jnp.maximum(0.5 * sample_rate / f0, 1.0)     # harmonics below Nyquist, as a real number
    k = jnp.floor(r)
    half = jnp.sin(0.5 * theta)
    small = jnp.abs(theta) < 1e-6
    # sum_{h=1}^{K} cos(h theta) = sin(K theta / 2) cos((K + 1) theta / 2) / sin(theta / 2)
    dirichlet = jnp.where(small, k, jnp.sin(0.5 * k * theta) * jnp.cos(0.5 * (k + 1.0) * theta)
                          / jnp.where(small, 1.0, half))
    # the top harmonic fades out as it nears Nyquist (weight r - K), so e is continuous in f0
    return (dirichlet - (1.0 - (r - k)) * jnp.cos(k * theta)) / jnp.sqrt(r)


def frames_to_samples(x, hop: int):
    """Frame values [B, F] (frame f at sample f * hop) -> [B, F * hop], linear between frame centres."""
    f = x.shape[-1]
    pos = np.arange(f * hop) / hop
    i0 = np.floor(pos).astype(np.int32)
    i1 = np.minimum(i0 + 1, f - 1)
    w = (pos - i0).astype(np.float32)
    return x[..., i0] * (1.0 - w) + x[..., i1] * w


OUTPUTS = ("audio", "pitch", "both")


class HarmonicDecoder(nn.Module):
    """z [B, T, L] -> audio float32 [B, T * hop] in (-1, 1); `pitch(z)` -> log f0 [B, T * upsample];
    `outputs="both"` -> (audio, log f0) from one pass of the trunk."""
    hop: int
    dim: int
    intermediate: int
    num_blocks: int
    upsample: int
    n_fft: int
    sample_rate: int
    f0_min: float
    f0_max: float
    kernel_size: int = 7
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z, f0_override=None, outputs: str = "audio"):
        """`f0_override` (f0 Hz, use) float32 / bool [B, T * upsample]: drive the excitation with the
        given f0 where `use` (teacher forcing in training), the predicted one elsewhere. `outputs`:
        one of OUTPUTS."""
        if outputs not in OUTPUTS:
            raise ValueError(f"outputs must be one of {OUTPUTS}, got {outputs!r}")
        x = frame_trunk(self, z)
        bins = self.n_fft // 2 + 1 - ZERO_BINS
        lo, hi = math.log(self.f0_min), math.log(self.f0_max)
        log_f0 = lo + (hi - lo) * jax.nn.sigmoid(
            nn.Dense(1, dtype=jnp.float32, param_dtype=jnp.float32, name="pitch_head")(x)[..., 0])
        if outputs == "pitch":
            return log_f0
        stft_hop = self.hop // self.upsample
        f0 = jnp.exp(log_f0)
        if f0_override is not None:
            f0 = jnp.where(f0_override[1], f0_override[0], f0)
        f0 = frames_to_samples(jax.lax.stop_gradient(f0), stft_hop)
        source = stft(harmonic_excitation(f0, self.sample_rate), self.n_fft, stft_hop)
        source = source[:, :x.shape[1], ZERO_BINS:]
        log_filter = nn.Dense(bins, dtype=jnp.float32, param_dtype=jnp.float32, name="harmonic_head",
                              bias_init=nn.initializers.constant(HARMONIC_FILTER_BIAS))(x)
        out = nn.Dense(2 * bins, dtype=jnp.float32, param_dtype=jnp.float32, name="head")(x)
        voiced = jnp.exp(jnp.minimum(log_filter, MAX_LOG_MAGNITUDE)) * source
        audio = synthesize(self, voiced + magnitude_phase(out[..., :bins], out[..., bins:]), z.shape[1])
        return (audio, log_f0) if outputs == "both" else audio

    def pitch(self, z):
        """z [B, T, L] -> predicted log f0 float32 [B, T * upsample] (STFT frame f at f * hop / upsample)."""
        return self(z, outputs="pitch")
