"""Spectral transforms: framing, the STFT and its inverse, magnitudes and mel spectrograms.

The one STFT of the project: the reconstruction loss, the metrics, the discriminators and the
probes' log-mel features all call `stft`; `istft` inverts it (the iSTFT decoder head). Everything
computes in float32 whatever the input dtype. Shapes: x [B, N] waveforms.
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


def overlap_add(frames, hop: int):
    """Sum frames [B, F, W] placed every `hop` samples: -> [B, (F - 1) * hop + W]."""
    b, f, w = frames.shape
    if w % hop == 0:
        # Each frame is W / hop consecutive hop-sized chunks; chunk r of frame f lands on slot f + r.
        k = w // hop
        chunks = frames.reshape(b, f, k, hop)
        out = sum(jnp.pad(chunks[:, :, r], ((0, 0), (r, k - 1 - r), (0, 0))) for r in range(k))
        return out.reshape(b, (f + k - 1) * hop)
    idx = (np.arange(f)[:, None] * hop + np.arange(w)[None, :]).ravel()
    return jnp.zeros((b, (f - 1) * hop + w), frames.dtype).at[:, idx].add(frames.reshape(b, -1))


@functools.cache
def _window_envelope(win_length: int, n_fft: int, hop: int, num_frames: int) -> np.ndarray:
    """Sum of squared windows placed every hop [(F - 1) * hop + n_fft]; 1 where it vanishes."""
    win2 = hann_window(win_length, n_fft).astype(np.float64) ** 2
    env = np.zeros((num_frames - 1) * hop + n_fft)
    for f in range(num_frames):
        env[f * hop:f * hop + n_fft] += win2
    return np.where(env > 1e-11, env, 1.0).astype(np.float32)


def istft(spec, n_fft: int, hop: int, win_length: int | None = None, length: int | None = None):
    """Inverse of `stft` by least-squares overlap-add (Griffin & Lim): complex [B, F, n_fft // 2 + 1]
    -> float32 [B, length], default length (F - 1) * hop.

    Frame f is centred on sample f * hop as in `stft`, so `istft(stft(x, n, h), n, h,
    length=x.shape[1])` returns x whenever consecutive windows overlap. Samples past the last frame
    centre, covered by fewer windows, are divided by the smaller window sum (never by zero).
    """
    spec = jnp.asarray(spec, jnp.complex64)
    if spec.ndim != 3 or spec.shape[-1] != n_fft // 2 + 1:
        raise ValueError(f"istft expects [B, F, {n_fft // 2 + 1}] for n_fft={n_fft}, got shape {spec.shape}")
    num = spec.shape[1]
    length = (num - 1) * hop if length is None else length
    if length > (num - 1) * hop + n_fft - n_fft // 2:
        raise ValueError(f"istft: length {length} exceeds what {num} frames of hop {hop} cover")
    win = hann_window(win_length or n_fft, n_fft)
    frames = jnp.fft.irfft(spec, n=n_fft, axis=-1).astype(_F32) * win
    env = _window_envelope(win_length or n_fft, n_fft, hop, num)
    start = n_fft // 2
    return (overlap_add(frames, hop) / env)[:, start:start + length]


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
