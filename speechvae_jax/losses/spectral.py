"""Spectral transforms and losses: STFT, mel, A-weighting, multi-resolution STFT loss, mel distance.

Everything here computes in float32 whatever the input dtype. Shapes: x, y [B, N] waveforms.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

_F32 = jnp.float32


@functools.lru_cache(maxsize=None)
def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of `win_length`, zero-padded at both sides to `n_fft` (librosa layout)."""
    if win_length > n_fft:
        raise ValueError(f"win_length {win_length} > n_fft {n_fft}")
    n = np.arange(win_length)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    return np.pad(win, (left, n_fft - win_length - left)).astype(np.float32)


def frame(x, n_fft: int, hop: int):
    """Overlapping frames of x [B, L] -> [B, 1 + (L - n_fft) // hop, n_fft] (no padding)."""
    num = 1 + (x.shape[-1] - n_fft) // hop
    if n_fft % hop == 0:
        # Frames are runs of consecutive hop-sized chunks: cheap slices, no gather.
        k = n_fft // hop
        chunks = x[:, : (num + k - 1) * hop].reshape(x.shape[0], num + k - 1, hop)
        return jnp.concatenate([chunks[:, r:r + num] for r in range(k)], axis=-1)
    idx = np.arange(num)[:, None] * hop + np.arange(n_fft)[None, :]
    return x[:, idx]


def stft(x, n_fft: int, hop: int, win_length: int | None = None):
    """Centred (reflect-padded) Hann STFT.

    x [B, N] -> complex64 [B, 1 + N // hop, n_fft // 2 + 1]; matches
    `librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win_length, pad_mode="reflect")`
    transposed to (frames, bins).
    """
    x = jnp.asarray(x, _F32)
    if x.ndim != 2:
        raise ValueError(f"stft expects [B, N] audio, got shape {x.shape}")
    win = hann_window(win_length or n_fft, n_fft)
    padded = jnp.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = frame(padded, n_fft, hop) * win
    return jnp.fft.rfft(frames, n=n_fft, axis=-1)


def magnitude(spec, eps: float = 1e-8):
    """|spec| with a floor on the power: sqrt(max(re^2 + im^2, eps)), float32."""
    return jnp.sqrt(jnp.maximum(jnp.real(spec) ** 2 + jnp.imag(spec) ** 2, eps))


def _hz_to_mel(f):
    """Slaney mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mel)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=None)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank [n_mels, n_fft // 2 + 1] (= librosa.filters.mel)."""
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return weights.astype(np.float32)


def mel_spectrogram(x, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
    """Magnitude mel spectrogram: x [B, N] -> float32 [B, 1 + N // hop, n_mels]."""
    fb = jnp.asarray(mel_filters(sample_rate, n_fft, n_mels))
    return magnitude(stft(x, n_fft, hop)) @ fb.T


def mel_distance(x, y, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
    """Mean |log10 mel(x) - log10 mel(y)| (mel floored at 1e-5): scalar float32."""
    mx = mel_spectrogram(x, sample_rate, n_fft, hop, n_mels)
    my = mel_spectrogram(y, sample_rate, n_fft, hop, n_mels)
    return jnp.mean(jnp.abs(jnp.log10(jnp.maximum(mx, 1e-5)) - jnp.log10(jnp.maximum(my, 1e-5))))


@functools.lru_cache(maxsize=None)
def a_weighting_fir(sample_rate: int = 16000, num_taps: int = 101) -> np.ndarray:
    """Linear-phase FIR approximating the IEC 61672 A-weighting curve, float32 [num_taps].

    The analog A-weighting transfer function (poles at 20.6, 107.7, 737.9 and 12194 Hz, four zeros
    at 0 Hz, normalised to 0 dB at 1 kHz) is mapped to a digital IIR by the bilinear transform; its
    magnitude response on a 512-point grid is then fitted by a least-squares FIR of `num_taps` taps.
    """
    if num_taps % 2 == 0:
        raise ValueError(f"num_taps must be odd, got {num_taps}")
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    gain_1k_db = 1.9997
    w1, w2, w3, w4 = (2.0 * np.pi * f for f in (f1, f2, f3, f4))
    num = [w4 ** 2 * 10.0 ** (gain_1k_db / 20.0), 0.0, 0.0, 0.0, 0.0]
    den = np.polymul([1.0, 2.0 * w4, w4 ** 2], [1.0, 2.0 * w1, w1 ** 2])
    den = np.polymul(np.polymul(den, [1.0, w3]), [1.0, w2])
    b, a = scipy.signal.bilinear(num, den, fs=sample_rate)
    freqs, resp = scipy.signal.freqz(b, a, worN=512, fs=sample_rate)
    taps = scipy.signal.firls(num_taps, freqs, np.abs(resp), fs=sample_rate)
    return taps.astype(np.float32)


def apply_fir(x, taps):
    """Same-length FIR filtering (true convolution, zero padded) of x [B, N] -> float32 [B, N]."""
    x = jnp.asarray(x, _F32)
    k = len(taps)
    kernel = jnp.asarray(np.ascontiguousarray(taps[::-1]), _F32)[:, None, None]  # [K, in=1, out=1]
    y = jax.lax.conv_general_dilated(x[:, :, None], kernel, (1,), [(k // 2, k - 1 - k // 2)],
                                     dimension_numbers=("NWC", "WIO", "NWC"))
    return y[:, :, 0]


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
        taps = a_weighting_fir(sample_rate)
        x, y = apply_fir(x, taps), apply_fir(y, taps)
    losses = [stft_loss(x, y, n, max(1, int(n * hop_ratio))) for n in fft_sizes]
    return sum(losses) / len(losses)
