"""YIN f0 (`dsp.pitch.yin`): known periodic signals, unvoiced inputs, frame layout, bad settings."""
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.dsp.pitch import yin

SR = 16000


def _tone(f0, n=16000, kind="harmonics"):
    t = np.arange(n) / SR
    if kind == "square":
        return 0.3 * np.sign(np.sin(2 * np.pi * f0 * t))
    return 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2 * f0 * t + 1.0)


@pytest.mark.parametrize("f0", [80.0, 123.4, 210.0, 333.0])
@pytest.mark.parametrize("kind", ["harmonics", "square"])
def test_periodic_signals_give_their_f0(f0, kind):
    est, voiced = yin(jnp.asarray(_tone(f0, kind=kind)[None]), SR, 200)
    assert est.shape == voiced.shape == (1, 81)
    inner = np.asarray(est[0, 4:-4])
    assert np.all(np.asarray(voiced[0, 4:-4]))
    np.testing.assert_allclose(inner, f0, rtol=5e-3)


def test_noise_and_silence_are_unvoiced():
    noise = 0.1 * np.random.default_rng(0).standard_normal((1, 16000))
    assert not np.any(np.asarray(yin(jnp.asarray(noise), SR, 200)[1]))
    f0, voiced = yin(jnp.zeros((2, 8000)), SR, 400)
    assert f0.shape == (2, 21) and not np.any(np.asarray(voiced))
    assert np.all(np.asarray(f0) >= 60.0) and np.all(np.isfinite(np.asarray(f0)))


def test_frame_f_is_centred_on_sample_f_times_hop():
    """A tone that jumps from 150 to 300 Hz at sample 8000: frames well before 8000 / hop read 150,
    frames well after read 300."""
    x = np.concatenate([_tone(150.0, 8000), _tone(300.0, 8000)])
    f0 = np.asarray(yin(jnp.asarray(x[None]), SR, 200)[0])[0]
    np.testing.assert_allclose(f0[10:35], 150.0, rtol=5e-3)
    np.testing.assert_allclose(f0[46:75], 300.0, rtol=5e-3)


def test_frame_too_short_for_the_lowest_f0_is_reported():
    with pytest.raises(ValueError, match="frame_length 400"):
        yin(jnp.zeros((1, 4000)), SR, 200, frame_length=400, fmin=60.0)
