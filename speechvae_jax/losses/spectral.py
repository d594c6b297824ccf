"""Spectral losses: multi-resolution STFT loss (with optional A-weighting) and mel distance.

Everything computes in float32 whatever the input dtype. Shapes: x (estimate), y (reference) [B, N].
"""
import jax.numpy as jnp

from speechvae_jax.dsp import filters
from speechvae_jax.dsp.spectral import log_mel, magnitude, stft

_F32 = jnp.float32


def stft_loss(x, y, n_fft: int, hop: int, eps: float = 1e-8):
    """One resolution: spectral convergence ||Y|-|X||_F / ||Y||_F + mean |log|Y| - log|X||.

    x is the estimate, y the reference, both [B, N] float32; returns a float32 scalar.
    """
    mx = magnitude(stft(x, n_fft, hop), eps)
    my = magnitude(stft(y, n_fft, hop), eps)
    sc = jnp.linalg.norm((my - mx).ravel()) / jnp.linalg.norm(my.ravel())
    log_mag = jnp.mean(jnp.abs(jnp.log(my) - jnp.log(mx)))
    return sc + log_mag


def multi_resolution_stft_loss(x, y, fft_sizes=(2048, 1024, 512, 256, 128, 64, 32), hop_ratio: float = 0.25,
                               perceptual_weighting: bool = True, mask=None, sample_rate: int = 16000):
    """Mean over resolutions of `stft_loss` (hop = n_fft * hop_ratio, window = n_fft).

    x: estimate [B, N], y: reference [B, N], mask: optional [B, N] (1 = real sample; both signals
    are zeroed outside it). With `perceptual_weighting` both signals first pass the A-weighting FIR.
    Returns a float32 scalar.
    """
    x = jnp.asarray(x, _F32)
    y = jnp.asarray(y, _F32)
    if x.shape != y.shape:
        raise ValueError(f"multi_resolution_stft_loss: shapes differ {x.shape} vs {y.shape}")
    if mask is not None:
        mask = jnp.asarray(mask, _F32)
        x, y = x * mask, y * mask
    if perceptual_weighting:
        taps = filters.a_weighting_fir(sample_rate)
        x, y = filters.convolve(x, taps), filters.convolve(y, taps)
    losses = [stft_loss(x, y, n, max(1, int(n * hop_ratio))) for n in fft_sizes]
    return sum(losses) / len(losses)


def mel_distance(x, y, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
    """Mean |log10 mel(x) - log10 mel(y)| (mel floored at 1e-5): scalar float32."""
    return jnp.mean(jnp.abs(log_mel(x, sample_rate, n_fft, hop, n_mels) - log_mel(y, sample_rate, n_fft, hop, n_mels)))
