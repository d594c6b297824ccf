"""Fundamental frequency by YIN (de Cheveigne & Kawahara 2002), jittable, for the pitch targets of the
harmonic decoder's f0 head. No gradient is meant to pass through it (the lag is an argmin).

Frame f of x [B, N] is the `frame_length` samples centred on sample f * hop (reflect-padded, as
`spectral.stft`), so there are 1 + N // hop frames. Per frame: the difference function d(tau) over an
integration window of frame_length - tau_max samples, its cumulative-mean normalisation d'(tau), and
the first dip of d' under `threshold` between the lags of fmax and fmin (its local minimum, refined by
a parabola). A frame is voiced when such a dip exists and its mean power exceeds `power_floor`.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.spectral import frame


def yin(x, sample_rate: int, hop: int, *, frame_length: int = 1024, fmin: float = 60.0, fmax: float = 500.0,
        threshold: float = 0.15, power_floor: float = 1e-6):
    """x [B, N] -> (f0 Hz float32 [B, 1 + N // hop] in [fmin, fmax], voiced bool [B, 1 + N // hop])."""
    x = jax.lax.stop_gradient(jnp.asarray(x, jnp.float32))
    lag_max = int(math.ceil(sample_rate / fmin))
    lag_min = max(2, int(math.floor(sample_rate / fmax)))
    width = frame_length - lag_max
    if width < lag_max:
        raise ValueError(f"yin: frame_length {frame_length} must be at least twice the longest lag "
                         f"{lag_max} (sample_rate / fmin)")
    padded = jnp.pad(x, ((0, 0), (frame_length // 2, frame_length // 2)), mode="reflect")
    w = frame(padded, frame_length, hop)                                    # [B, F, W]
    n = 1 << (2 * frame_length - 1).bit_length()
    # r(tau) = sum_{j < width} w_j w_{j + tau}, by one FFT correlation
    r = jnp.fft.irfft(jnp.conj(jnp.fft.rfft(w[..., :width], n)) * jnp.fft.rfft(w, n), n)[..., :lag_max + 2]
    cs = jnp.pad(jnp.cumsum(w * w, axis=-1), ((0, 0), (0, 0), (1, 0)))
    lags = np.arange(lag_max + 2)
    energy_0 = cs[..., width:width + 1]
    energy_tau = cs[..., lags + width] - cs[..., lags]
    d = jnp.maximum(energy_0 + energy_tau - 2.0 * r, 0.0)
    d = d.at[..., 0].set(0.0)
    cmnd = jnp.where(lags > 0, d * lags / jnp.maximum(jnp.cumsum(d, axis=-1), 1e-12), 1.0)

    in_range = (lags >= lag_min) & (lags <= lag_max)
    below = (cmnd < threshold) & in_range
    first = jnp.argmax(below, axis=-1)[..., None]
    after = lags >= first
    run = after & (jnp.cumsum(after & ~below, axis=-1) == 0)               # the first run under threshold
    has_dip = jnp.any(below, axis=-1)
    pick = jnp.where(has_dip[..., None], run, in_range)
    tau = jnp.argmin(jnp.where(pick, cmnd, jnp.inf), axis=-1)
    c = lambda k: jnp.take_along_axis(cmnd, (tau + k)[..., None], axis=-1)[..., 0]  # noqa: E731
    left, mid, right = c(-1), c(0), c(1)
    curvature = left - 2.0 * mid + right
    shift = jnp.where(curvature > 1e-12, 0.5 * (left - right) / jnp.maximum(curvature, 1e-12), 0.0)
    period = tau + jnp.clip(shift, -0.5, 0.5)
    f0 = jnp.clip(sample_rate / period, fmin, fmax)
    voiced = has_dip & (energy_0[..., 0] / width > power_floor)
    return f0.astype(jnp.float32), voiced
