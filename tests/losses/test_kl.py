import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.losses.kl import vae_kl


def _numpy_kl(mean, sigma, mask):
    per = np.sum(mean ** 2 + sigma ** 2 - np.log(sigma ** 2) - 1.0, axis=-1)
    return float(np.sum(per * mask) / np.sum(mask))


def test_kl_matches_numpy_reference():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(2, 5, 4)).astype(np.float32)
    sigma = (np.abs(rng.normal(size=(2, 5, 4))) + 0.1).astype(np.float32)
    ones = np.ones((2, 5), np.float32)
    np.testing.assert_allclose(vae_kl(mean, sigma), _numpy_kl(mean, sigma, ones), rtol=1e-5)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    np.testing.assert_allclose(vae_kl(mean, sigma, mask), _numpy_kl(mean, sigma, mask), rtol=1e-5)


def test_kl_zero_at_standard_normal_and_known_value():
    assert float(vae_kl(jnp.zeros((1, 3, 64)), jnp.ones((1, 3, 64)))) == pytest.approx(0.0, abs=1e-6)
    # one channel, mean 1, sigma 1: 1 + 1 - 0 - 1 = 1 (no 1/2 factor)
    assert float(vae_kl(jnp.ones((1, 2, 1)), jnp.ones((1, 2, 1)))) == pytest.approx(1.0)


def test_kl_bf16_inputs_compute_float32_and_grad():
    mean = jnp.full((1, 2, 3), 0.5, jnp.bfloat16)
    out = vae_kl(mean, jnp.ones((1, 2, 3), jnp.bfloat16))
    assert out.dtype == jnp.float32
    g = jax.grad(lambda m: vae_kl(m, jnp.ones_like(m)))(jnp.full((1, 2, 3), 0.5))
    np.testing.assert_allclose(g, np.full((1, 2, 3), 2 * 0.5 / 2), rtol=1e-6)


def test_kl_bad_mask_shape():
    with pytest.raises(ValueError, match="mask shape"):
        vae_kl(jnp.zeros((2, 3, 4)), jnp.ones((2, 3, 4)), jnp.ones((2, 4)))
