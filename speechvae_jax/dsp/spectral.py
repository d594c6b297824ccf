"""Spectral transforms: framing, the STFT, magnitudes and mel spectrograms.

The one STFT of the project: the reconstruction loss, the metrics, the discriminators and the
probes' log-mel features all call `stft`. Everything computes in float32 whatever the input dtype.
Shapes: x [B, N] waveforms.
"""
import functools

import jax.numpy as jnp
import numpy as np

_F32 = jnp.float32


@functools.cache
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


@functools.cache
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


def log_mel(x, sample_rate: int = 16000, n_fft: int = 1024, hop: int = 256, n_mels: int = 80,
            floor: float = 1e-5):
    """log10 of the mel spectrogram floored at `floor`: x [B, N] -> float32 [B, 1 + N // hop, n_mels]."""
    return jnp.log10(jnp.maximum(mel_spectrogram(x, sample_rate, n_fft, hop, n_mels), floor))
