import jax.numpy as jnp
import numpy as np
import scipy.signal

from speechvae_jax.dsp import filters
from tests.signals import tone_plus_noise


def test_a_weighting_response_is_sane():
    taps = filters.a_weighting_fir(16000)
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


def test_convolve_matches_numpy_convolution():
    x = tone_plus_noise(500)
    taps = np.array([0.1, -0.3, 0.5, 0.2, 0.05], np.float32)
    ref = np.stack([np.convolve(r, taps, mode="same") for r in x])
    np.testing.assert_allclose(filters.convolve(x, taps), ref, atol=1e-6)


def test_upsample2_interpolates_band_limitedtone_plus_noise():
    t = np.arange(800)
    x = np.sin(2 * np.pi * 0.03 * t)[None].astype(np.float32)
    y = np.asarray(filters.upsample2(jnp.asarray(x)))[0]
    ref = np.sin(2 * np.pi * 0.03 * np.arange(1600) / 2)
    np.testing.assert_allclose(y[100:-100], ref[100:-100], atol=2e-3)


def test_decimate2_keeps_a_low_tone_and_removes_a_high_one():
    t = np.arange(4000)
    low = np.sin(2 * np.pi * 0.02 * t)[None].astype(np.float32)
    high = np.sin(2 * np.pi * 0.4 * t)[None].astype(np.float32)
    y_low, y_high = np.asarray(filters.decimate2(low))[0], np.asarray(filters.decimate2(high))[0]
    assert y_low.shape == (2000,)
    np.testing.assert_allclose(y_low[100:-100], low[0, ::2][100:-100], atol=1e-3)
    assert np.abs(y_high[100:-100]).max() < 1e-3
