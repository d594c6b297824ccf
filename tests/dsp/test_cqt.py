import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.dsp.cqt import cqt


def test_cqt_peaks_at_the_tone_bin():
    sr, bpo, n_oct, fmin = 32000, 24, 8, 32.7
    for f in (110.0, 1000.0, 6000.0):
        x = np.sin(2 * np.pi * f * np.arange(16384) / sr)[None].astype(np.float32)
        z = np.abs(np.asarray(cqt(jnp.asarray(x), sr, 512, fmin, n_oct, bpo)))
        assert z.shape == (1, 32, n_oct * bpo)
        peak = int(np.argmax(z[0, 8:-8].mean(0)))
        assert abs(peak - bpo * np.log2(f / fmin)) <= 1, (f, peak)
        assert z[0, 8:-8].mean(0).max() == pytest.approx(0.5, rel=0.15)  # unit-L1 kernels: |X| ~ A / 2


def test_cqt_rejects_bad_hop():
    with pytest.raises(ValueError, match="divisible"):
        cqt(jnp.zeros((1, 1000)), 32000, 100, 32.7, 8, 24)




def test_release_cqt_peaks_at_the_tone_bin_and_has_nnaudio_frames():
    from speechvae_jax.dsp.cqt import release_cqt

    sr, bpo, n_oct = 32000, 24, 8
    for f in (110.0, 1000.0, 6000.0):
        x = np.sin(2 * np.pi * f * np.arange(16384) / sr)[None].astype(np.float32)
        z = np.abs(np.asarray(release_cqt(jnp.asarray(x), sr, 512, n_oct * bpo, bpo)))
        assert z.shape == (1, 16384 // 512 + 1, n_oct * bpo)
        peak = int(np.argmax(z[0, 8:-8].mean(0)))
        assert abs(peak - bpo * np.log2(f / 32.70)) <= 1, (f, peak)
