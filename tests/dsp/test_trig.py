import jax
import jax.numpy as jnp
import numpy as np

from speechvae_jax.dsp.trig import sincos


def test_sincos_matches_float64_within_2e7_up_to_8192():
    u = np.concatenate([np.linspace(-8192, 8192, 400001), np.linspace(-7, 7, 10001),
                        np.arange(-40, 41) * np.pi / 4]).astype(np.float32)
    sin, cos = jax.jit(sincos)(u)
    ref = u.astype(np.float64)
    assert sin.dtype == jnp.float32 and sin.shape == u.shape
    assert np.max(np.abs(np.asarray(sin, np.float64) - np.sin(ref))) < 2e-7
    assert np.max(np.abs(np.asarray(cos, np.float64) - np.cos(ref))) < 2e-7


def test_sincos_exact_points_and_symmetry():
    sin, cos = sincos(jnp.array([0.0, np.pi / 2, np.pi, -np.pi / 2], jnp.float32))
    np.testing.assert_allclose(sin, [0, 1, 0, -1], atol=1e-7)
    np.testing.assert_allclose(cos, [1, 0, -1, 0], atol=1e-7)
    u = jnp.asarray(np.random.default_rng(0).uniform(-50, 50, 1000), jnp.float32)
    (s, c), (s_neg, c_neg) = sincos(u), sincos(-u)
    np.testing.assert_allclose(s_neg, -s, atol=1e-7)
    np.testing.assert_allclose(c_neg, c, atol=1e-7)
    np.testing.assert_allclose(s * s + c * c, 1.0, atol=4e-7)
