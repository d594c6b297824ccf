"""A multirate constant-Q transform in JAX (the sub-band CQT discriminator's front end)."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.filters import decimate2


@functools.cache
def cqt_kernels(sample_rate: float, fmin: float, n_octaves: int, bins_per_octave: int):
    """Complex kernels of the top octave: (real, imag) each [K, bins_per_octave], K a power of two.

    Bin k has centre f_k = fmin * 2**(n_octaves - 1 + k / bpo), Q = 1 / (2**(1/bpo) - 1), length
    ceil(Q * sr / f_k), a Hann window normalised to unit L1 norm, centred in K samples. Lower octaves
    reuse these kernels on the signal decimated by 2 per octave.
    """
    q = 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)
    freqs = fmin * 2.0 ** (n_octaves - 1 + np.arange(bins_per_octave) / bins_per_octave)
    if freqs[-1] >= sample_rate / 2:
        raise ValueError(f"CQT top bin {freqs[-1]:.0f} Hz is above Nyquist of {sample_rate} Hz")
    lengths = np.ceil(q * sample_rate / freqs).astype(int)
    size = int(2 ** math.ceil(math.log2(lengths.max())))
    kernels = np.zeros((size, bins_per_octave), np.complex128)
    for k, (f, n) in enumerate(zip(freqs, lengths)):
        t = np.arange(n) - (n - 1) / 2
        win = np.hanning(n)
        start = (size - n) // 2
        kernels[start:start + n, k] = win / win.sum() * np.exp(2j * np.pi * f * t / sample_rate)
    return kernels.real.astype(np.float32), kernels.imag.astype(np.float32)


def cqt(x, sample_rate: float, hop: int, fmin: float, n_octaves: int, bins_per_octave: int):
    """Multirate constant-Q transform: x [B, L] -> complex64 [B, L // hop, n_octaves * bpo], low to high.

    Octave o (0 = top) convolves the signal decimated by 2**o with the top-octave kernels at hop
    hop / 2**o, so every octave has the same frame count. L must be a multiple of hop, and hop of
    2**(n_octaves - 1).
    """
    if hop % 2 ** (n_octaves - 1) or x.shape[1] % hop:
        raise ValueError(f"cqt: hop {hop} must be divisible by 2**{n_octaves - 1} and length {x.shape[1]} by hop")
    real, imag = cqt_kernels(float(sample_rate), float(fmin), n_octaves, bins_per_octave)
    kernel = jnp.asarray(np.concatenate([real, imag], axis=1))[:, None, :]  # [K, 1, 2 * bpo]
    size = kernel.shape[0]
    octaves = []
    for o in range(n_octaves):
        h = hop // 2 ** o
        y = jax.lax.conv_general_dilated(x[:, :, None], kernel, (h,), [(size // 2, size // 2 - 1)],
                                         dimension_numbers=("NWC", "WIO", "NWC"))
        y = y[:, : x.shape[1] // h]
        octaves.append(jax.lax.complex(y[..., :bins_per_octave], y[..., bins_per_octave:]))
        if o < n_octaves - 1:
            x = decimate2(x)
    return jnp.concatenate(octaves[::-1], axis=-1)
