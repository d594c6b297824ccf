import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.losses.adversarial import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss

REAL = [(jnp.array([[1.0, 0.5]]), [jnp.array([1.0, 2.0]), jnp.array([[0.0]])]),
        (jnp.array([[0.0]]), [jnp.array([3.0])])]
FAKE = [(jnp.array([[0.0, 1.0]]), [jnp.array([0.0, 2.5]), jnp.array([[1.0]])]),
        (jnp.array([[2.0]]), [jnp.array([1.0])])]


def test_lsgan_losses_hand_computed():
    # D: disc 0: mean((1-[1,.5])^2)=0.125, mean([0,1]^2)=0.5; disc 1: 1 + 4
    assert float(lsgan_discriminator_loss(REAL, FAKE)) == pytest.approx(0.125 + 0.5 + 1.0 + 4.0)
    # G: disc 0: mean([1, 0]) = 0.5; disc 1: (1-2)^2 = 1
    assert float(lsgan_generator_loss(FAKE)) == pytest.approx(1.5)


def test_feature_matching_hand_computed_and_gradient_only_to_fake():
    # disc 0: mean|[1, -0.5]| = 0.75, |0-1| = 1; disc 1: |3-1| = 2
    assert float(feature_matching_loss(REAL, FAKE)) == pytest.approx(3.75)
    g_real, g_fake = jax.grad(feature_matching_loss, argnums=(0, 1))(REAL, FAKE)
    assert all(float(jnp.abs(x).sum()) == 0 for x in jax.tree.leaves(g_real))
    np.testing.assert_allclose(g_fake[0][1][0], [-0.5, 0.5])


def test_losses_are_float32_and_check_lengths():
    bf = [(jnp.ones((2, 3), jnp.bfloat16), [jnp.ones((2, 4), jnp.bfloat16)])]
    assert lsgan_generator_loss(bf).dtype == jnp.float32
    assert feature_matching_loss(bf, bf).dtype == jnp.float32
    with pytest.raises(ValueError, match="differ in length"):
        lsgan_discriminator_loss(REAL, FAKE[:1])
    with pytest.raises(ValueError, match="feature map lists"):
        feature_matching_loss([(REAL[0][0], REAL[0][1][:1])], FAKE[:1])
