import jax
import jax.numpy as jnp
import numpy as np
import pytest
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


def _bigvgan_up2(x, taps):
    """Numpy reference of BigVGAN's UpSample1d(2, 12): edge pad 5, stride-2 transposed conv x 2, crop 15."""
    pad = len(taps) // 2 - 1
    xp = np.pad(x, (pad, pad), mode="edge")
    full = np.zeros((len(xp) - 1) * 2 + len(taps))
    for m, v in enumerate(xp):
        full[2 * m: 2 * m + len(taps)] += 2 * v * taps
    left = pad * 2 + (len(taps) - 2) // 2
    return full[left: left + 2 * len(x)]


def _bigvgan_down2(x, taps):
    """Numpy reference of BigVGAN's DownSample1d(2, 12): edge pad (5, 6), correlate, stride 2."""
    xp = np.pad(x, (len(taps) // 2 - 1, len(taps) // 2), mode="edge")
    return np.array([np.dot(xp[2 * m: 2 * m + len(taps)], taps) for m in range((len(xp) - len(taps)) // 2 + 1)])


def test_kaiser_sinc_lowpass_is_a_normalised_symmetric_half_band_filter():
    taps = filters.kaiser_sinc_lowpass(0.25, 0.3, 12)
    assert taps.shape == (12,) and abs(taps.sum() - 1) < 1e-6
    np.testing.assert_allclose(taps, taps[::-1], atol=1e-7)
    freqs, resp = scipy.signal.freqz(taps, worN=512, fs=1.0)
    assert abs(resp[0]) == pytest.approx(1.0, abs=1e-5) and abs(resp[-1]) < 0.05


def test_alias_free_up_and_down_sampling_match_bigvgan_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 37, 3)).astype(np.float32)
    taps = filters.kaiser_sinc_lowpass(0.25, 0.3, 12).astype(np.float64)
    up = np.asarray(filters.alias_free_upsample2(jnp.asarray(x)))
    down = np.asarray(filters.alias_free_downsample2(jnp.asarray(x)))
    assert up.shape == (2, 74, 3) and down.shape == (2, 19, 3)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(up[b, :, c], _bigvgan_up2(x[b, :, c], taps), atol=1e-5)
            np.testing.assert_allclose(down[b, :, c], _bigvgan_down2(x[b, :, c], taps), atol=1e-5)


@pytest.mark.parametrize("length", [1, 2, 7, 8, 37])
def test_alias_free_resampling_gradients_are_the_transposed_bigvgan_operators(length):
    """The explicit VJPs equal A^T g, A the matrix of the numpy reference applied to unit impulses."""
    taps = filters.kaiser_sinc_lowpass(0.25, 0.3, 12).astype(np.float64)
    rng = np.random.default_rng(length)
    x = jnp.asarray(rng.normal(size=(1, length, 2)), jnp.float32)
    for fn, ref in ((filters.alias_free_upsample2, _bigvgan_up2), (filters.alias_free_downsample2, _bigvgan_down2)):
        matrix = np.stack([ref(np.eye(length)[i], taps) for i in range(length)], axis=1)  # [out, in]
        y, vjp = jax.vjp(fn, x)
        g = rng.normal(size=y.shape).astype(np.float32)
        (grad,) = vjp(jnp.asarray(g))
        assert grad.shape == x.shape
        for c in range(2):
            np.testing.assert_allclose(np.asarray(grad)[0, :, c], matrix.T @ g[0, :, c], atol=1e-5)


def test_resample_up_interpolates_a_band_limited_tone():
    t = np.arange(800)
    x = np.sin(2 * np.pi * 0.03 * t)[None].astype(np.float32)
    y = np.asarray(filters.resample_up(jnp.asarray(x), 2))[0]
    assert y.shape == (1600,)
    np.testing.assert_allclose(y[100:-100], np.sin(2 * np.pi * 0.03 * np.arange(1600) / 2)[100:-100], atol=2e-3)
    np.testing.assert_allclose(y[::2], x[0], atol=2e-2)  # the even outputs sit on the input samples


@pytest.mark.parametrize("stride,padding", [(1, None), (2, (7, 7)), (3, (0, 5)), (2, (2, 0))])
def test_correlate_gradient_equals_the_transposed_operator(stride, padding):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 37)), jnp.float32)
    taps = rng.normal(size=8).astype(np.float32)
    y = filters.correlate(x, taps, stride, padding)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    (got,) = jax.vjp(lambda x: filters.correlate(x, taps, stride, padding), x)[1](g)
    # the explicit matrix of the operator: column j is the response to the j-th unit impulse
    matrix = np.stack([np.asarray(filters.correlate(np.eye(37, dtype=np.float32)[j][None], taps, stride, padding))[0]
                       for j in range(37)], axis=1)                                           # [L', L]
    np.testing.assert_allclose(got, np.asarray(g) @ matrix, atol=1e-5)
