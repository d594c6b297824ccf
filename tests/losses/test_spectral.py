import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal

from speechvae_jax.losses import spectral


def _signal(n=4000, seed=0, batch=2):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    return (tone[None] + 0.05 * rng.normal(size=(batch, n))).astype(np.float32)


@pytest.mark.parametrize("n_fft,hop,win", [(256, 64, None), (100, 30, None), (128, 32, 96)])
def test_stft_matches_librosa(n_fft, hop, win):
    x = _signal(1000)
    ours = np.asarray(spectral.stft(x, n_fft, hop, win))
    ref = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode="reflect").transpose(0, 2, 1)
    assert ours.shape == ref.shape == (2, 1 + 1000 // hop, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=2e-4 * np.abs(ref).max())


def test_stft_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        spectral.stft(np.zeros(100, np.float32), 32, 8)


def test_mel_filters_and_spectrogram_match_librosa():
    np.testing.assert_allclose(spectral.mel_filters(16000, 1024, 80),
                               librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80), atol=1e-6)
    x = _signal(4000)
    ours = np.asarray(spectral.mel_spectrogram(x))
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=1024, hop_length=256, n_mels=80, power=1.0,
                                         pad_mode="reflect").transpose(0, 2, 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-4 * ref.max())


def test_a_weighting_response_is_sane():
    taps = spectral.a_weighting_fir(16000)
    assert taps.shape == (101,)
    np.testing.assert_allclose(taps, taps[::-1], atol=1e-7)  # linear phase
    freqs, resp = scipy.signal.freqz(taps, worN=8192, fs=16000)
    db = 20 * np.log10(np.abs(resp) + 1e-12)
    at = lambda f: db[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert abs(at(1000)) < 1.0           # 0 dB at 1 kHz by definition
    assert abs(at(3000) - 1.2) < 1.5     # small boost near 2.5-4 kHz
    assert -25 < at(100) < -12           # IEC value is -19.1 dB; 101 taps smooth the low end
    assert at(20) < -25                  # strong low-frequency cut
    assert at(100) < at(300) < at(1000)  # monotone rise


def test_apply_fir_matches_numpy_convolution():
    x = _signal(500)
    taps = np.array([0.1, -0.3, 0.5, 0.2, 0.05], np.float32)
    ref = np.stack([np.convolve(r, taps, mode="same") for r in x])
    np.testing.assert_allclose(spectral.apply_fir(x, taps), ref, atol=1e-6)


def test_stft_loss_matches_numpy_reference():
    x, y = _signal(800, 1), _signal(800, 2)
    sx = np.sqrt(np.maximum(np.abs(librosa.stft(x, n_fft=64, hop_length=16, pad_mode="reflect")) ** 2, 1e-8))
    sy = np.sqrt(np.maximum(np.abs(librosa.stft(y, n_fft=64, hop_length=16, pad_mode="reflect")) ** 2, 1e-8))
    ref = np.linalg.norm(sy - sx) / np.linalg.norm(sy) + np.mean(np.abs(np.log(sy) - np.log(sx)))
    np.testing.assert_allclose(spectral.stft_loss(x, y, 64, 16), ref, rtol=1e-4)


def test_mrstft_zero_for_identical_and_monotone_in_noise():
    y = jnp.asarray(_signal(4000))
    noise = jnp.asarray(np.random.default_rng(3).normal(size=y.shape), jnp.float32)
    assert float(jax.jit(spectral.multi_resolution_stft_loss)(y, y)) == pytest.approx(0.0, abs=1e-6)
    levels = jnp.array([0.003, 0.03, 0.3])
    losses = jax.jit(jax.vmap(lambda a: spectral.multi_resolution_stft_loss(y + a * noise, y)))(levels)
    assert 0 < losses[0] < losses[1] < losses[2]
    plain = float(jax.jit(spectral.multi_resolution_stft_loss, static_argnames="perceptual_weighting")(
        y + 0.03 * noise, y, perceptual_weighting=False))
    assert plain > 0 and plain != pytest.approx(float(losses[1]))


def test_mrstft_mask_ignores_padding_and_has_gradient():
    y = _signal(2000)
    x = y.copy()
    x[:, 1500:] = 1.0  # garbage in the padded tail
    mask = np.zeros_like(y)
    mask[:, :1500] = 1.0
    loss = jax.jit(lambda a, b, m: spectral.multi_resolution_stft_loss(a, b, fft_sizes=(256, 64), mask=m))
    assert float(loss(x, y, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(x, y, np.ones_like(y))) > 0.1
    g = jax.jit(jax.grad(loss))(jnp.asarray(y) * 0.5, jnp.asarray(y), jnp.asarray(mask))
    assert np.all(np.isfinite(g)) and float(jnp.abs(g[:, :1500]).sum()) > 0
    assert float(jnp.abs(g[:, 1500:]).sum()) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        spectral.multi_resolution_stft_loss(y, y[:, :100])


def test_mel_distance():
    y = _signal(4000)
    assert float(spectral.mel_distance(y, y)) == pytest.approx(0.0, abs=1e-7)
    assert float(spectral.mel_distance(y * 0.5, y)) == pytest.approx(np.log10(2.0), rel=0.05)
