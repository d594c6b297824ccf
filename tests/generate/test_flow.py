"""Flow matching and the ODE samplers on toy 2-D distributions."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from speechvae_jax.generate import flow


def test_linear_path_values():
    x0 = jnp.array([[0.0, 2.0], [1.0, 1.0]])
    x1 = jnp.array([[4.0, -2.0], [3.0, 5.0]])
    x_t, target = flow.linear_path(x0, x1, jnp.array([0.25, 1.0]))
    np.testing.assert_allclose(x_t, [[1.0, 1.0], [3.0, 5.0]])
    np.testing.assert_allclose(target, [[4.0, -4.0], [2.0, 4.0]])


def test_masked_mse_counts_weighted_frames_only():
    pred = jnp.zeros((1, 3, 2))
    target = jnp.array([[[1.0, 1.0], [2.0, 0.0], [100.0, 100.0]]])
    assert float(flow.masked_mse(pred, target, jnp.array([[1, 1, 0]]))) == pytest.approx((1 + 2) / 2)
    assert float(flow.masked_mse(pred, target, jnp.zeros((1, 3)))) == 0.0


def test_sway_times():
    np.testing.assert_allclose(flow.sway_times(4, 0.0), [0, 0.25, 0.5, 0.75, 1.0])
    t = np.linspace(0, 1, 33)
    np.testing.assert_allclose(flow.sway_times(32, -1.0), 1 - np.cos(np.pi / 2 * t), atol=1e-6)
    grid = np.asarray(flow.sway_times(32, -1.0))
    assert grid[0] == 0.0 and grid[-1] == pytest.approx(1.0) and np.all(np.diff(grid) > 0)
    assert np.diff(grid)[0] < np.diff(grid)[-1]  # denser near t = 0
    with pytest.raises(ValueError, match="nfe"):
        flow.sway_times(0)


def test_guided_scales():
    vc, vu = jnp.array([1.0, 2.0]), jnp.array([0.5, -1.0])
    np.testing.assert_array_equal(flow.guided(vc, vu, 1.0), vc)
    np.testing.assert_array_equal(flow.guided(vc, vu, 0.0), vu)
    np.testing.assert_allclose(flow.guided(vc, vu, 3.0), vu + 3 * (vc - vu))


MU = np.array([1.5, -0.5])
VAR = np.array([0.25, 2.0])


def _gaussian_velocity(x, t):
    """The exact flow-matching velocity E[x1 - x0 | x_t] for x0 ~ N(0, I), x1 ~ N(MU, diag(VAR))."""
    gain = (t * VAR - (1 - t)) / ((1 - t) ** 2 + t ** 2 * VAR)
    return MU + gain * (x - t * MU)


@pytest.mark.parametrize("method,nfe,sway", [("euler", 64, 0.0), ("midpoint", 8, 0.0), ("midpoint", 8, -1.0)])
def test_integrate_exact_velocity_reaches_target(method, nfe, sway):
    x0 = jax.random.normal(jax.random.key(0), (20000, 2))
    x1 = np.asarray(jax.jit(lambda x: flow.integrate(_gaussian_velocity, x, flow.sway_times(nfe, sway),
                                                     method))(x0))
    np.testing.assert_allclose(x1.mean(0), MU, atol=0.03)
    np.testing.assert_allclose(x1.var(0), VAR, rtol=0.05)


def test_integrate_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        flow.integrate(lambda x, t: x, jnp.zeros(2), flow.sway_times(2), "rk4")


class _Velocity(nn.Module):
    @nn.compact
    def __call__(self, x, t):
        h = jnp.concatenate([x, jnp.broadcast_to(t, x.shape[:1])[:, None]], -1)  # t [] or [N]
        for _ in range(3):
            h = nn.silu(nn.Dense(64)(h))
        return nn.Dense(2)(h)


def _two_moons_like(rng, n):
    """A two-component 2-D mixture: weights 0.3 / 0.7, anisotropic components."""
    k_c, k_n = jax.random.split(rng)
    comp = jax.random.uniform(k_c, (n,)) < 0.3
    centres = jnp.where(comp[:, None], jnp.array([-2.0, 1.0]), jnp.array([1.5, -0.5]))
    scales = jnp.where(comp[:, None], jnp.array([0.3, 0.6]), jnp.array([0.5, 0.2]))
    return centres + scales * jax.random.normal(k_n, (n, 2))


def test_flow_matching_learns_toy_distribution():
    model = _Velocity()
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros(()))
    tx = optax.adam(optax.cosine_decay_schedule(3e-3, 1500, alpha=0.05))
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, rng):
        k_data, k_noise, k_t = jax.random.split(rng, 3)
        x1 = _two_moons_like(k_data, 512)
        t = jax.random.uniform(k_t, (512,))
        x_t, target = flow.linear_path(jax.random.normal(k_noise, x1.shape), x1, t)

        def loss(p):
            pred = model.apply(p, x_t, t)
            return flow.masked_mse(pred[:, None], target[:, None], jnp.ones((512, 1)))

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt, value

    for i in range(1500):
        params, opt, _ = step(params, opt, jax.random.key(i + 1))

    target = np.asarray(_two_moons_like(jax.random.key(10**6), 20000))
    for method, nfe in (("euler", 32), ("midpoint", 16)):
        samples = np.asarray(jax.jit(lambda x, m=method, n=nfe: flow.integrate(
            lambda y, t: model.apply(params, y, t), x, flow.sway_times(n, -1.0), m))(
            jax.random.normal(jax.random.key(7), (20000, 2))))
        np.testing.assert_allclose(samples.mean(0), target.mean(0), atol=0.1)
        np.testing.assert_allclose(np.cov(samples.T), np.cov(target.T), atol=0.15)
        # Mass of each component: the share of samples left of x = -0.25.
        assert abs(np.mean(samples[:, 0] < -0.25) - np.mean(target[:, 0] < -0.25)) < 0.03
