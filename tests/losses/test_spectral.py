import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from speechvae_jax.losses import spectral
from tests.signals import tone_plus_noise


def test_stft_loss_matches_numpy_reference():
    x, y = tone_plus_noise(800, 1), tone_plus_noise(800, 2)
    sx = np.sqrt(np.maximum(np.abs(librosa.stft(x, n_fft=64, hop_length=16, pad_mode="reflect")) ** 2, 1e-8))
    sy = np.sqrt(np.maximum(np.abs(librosa.stft(y, n_fft=64, hop_length=16, pad_mode="reflect")) ** 2, 1e-8))
    ref = np.linalg.norm(sy - sx) / np.linalg.norm(sy) + np.mean(np.abs(np.log(sy) - np.log(sx)))
    np.testing.assert_allclose(spectral.stft_loss(x, y, 64, 16), ref, rtol=1e-4)


def test_mrstft_zero_for_identical_and_monotone_in_noise():
    y = jnp.asarray(tone_plus_noise(4000))
    noise = jnp.asarray(np.random.default_rng(3).normal(size=y.shape), jnp.float32)
    assert float(jax.jit(spectral.multi_resolution_stft_loss)(y, y)) == pytest.approx(0.0, abs=1e-6)
    levels = jnp.array([0.003, 0.03, 0.3])
    losses = jax.jit(jax.vmap(lambda a: spectral.multi_resolution_stft_loss(y + a * noise, y)))(levels)
    assert 0 < losses[0] < losses[1] < losses[2]
    plain = float(jax.jit(spectral.multi_resolution_stft_loss, static_argnames="perceptual_weighting")(
        y + 0.03 * noise, y, perceptual_weighting=False))
    assert plain > 0 and plain != pytest.approx(float(losses[1]))


def test_mrstft_mask_ignores_padding_and_has_gradient():
    y = tone_plus_noise(2000)
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
    y = tone_plus_noise(4000)
    assert float(spectral.mel_distance(y, y)) == pytest.approx(0.0, abs=1e-7)
    assert float(spectral.mel_distance(y * 0.5, y)) == pytest.approx(np.log10(2.0), rel=0.05)
