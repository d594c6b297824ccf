"""Adaptive weights from last-layer cotangents against brute-force jax.grad, and the schedules."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.losses import alignment, weighting

B, T, C, OUT = 2, 6, 8, 10  # OUT = 2 * latent (mean and scale)


def _setup():
    r = np.random.default_rng(0)
    h = jnp.asarray(r.normal(size=(B, T, C)), jnp.float32)
    layer = nn.Dense(OUT)
    params = layer.init(jax.random.PRNGKey(0), h)["params"]
    target = jnp.asarray(r.normal(size=(B, T, OUT)), jnp.float32)
    teacher = jnp.asarray(r.normal(size=(B, T, 6)), jnp.float32)
    mask = jnp.asarray(np.arange(T)[None] < np.array([[T], [4]]))
    losses = {
        "rec": lambda st: jnp.mean(jnp.abs(st - target)),
        "mcos": lambda st: alignment.marginal_cosine(st[..., :6], teacher, mask, 0.1),
        "mdms": lambda st: alignment.marginal_distance_matrix(st[..., :6], teacher, mask, 0.05),
    }
    return h, layer, params, losses


def test_last_layer_grads_equal_jax_grad():
    h, layer, params, losses = _setup()
    stats, vjp = jax.vjp(lambda hh: layer.apply({"params": params}, hh), h)
    for loss in losses.values():
        ct = jax.grad(loss)(stats)
        got = weighting.last_layer_grads(h, ct)
        want = jax.grad(lambda pp: loss(layer.apply({"params": pp}, h)))(params)
        assert got["kernel"].shape == (C, OUT) and got["bias"].shape == (OUT,)
        np.testing.assert_allclose(got["kernel"], want["kernel"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got["bias"], want["bias"], rtol=1e-5, atol=1e-7)


def test_grad_norm_matches_numpy():
    tree = {"a": np.arange(6.0).reshape(2, 3), "b": {"c": np.array([-3.0, 4.0])}}
    np.testing.assert_allclose(weighting.grad_norm(tree),
                               np.sqrt(np.sum(np.arange(6.0) ** 2) + 25.0), rtol=1e-6)


def _brute(params, layer, h, loss):
    g = jax.grad(lambda pp: loss(layer.apply({"params": pp}, h)))(params)
    return g, np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree_util.tree_leaves(g)))


def test_adaptive_weights_equal_brute_force_norm_ratio():
    h, layer, params, losses = _setup()
    stats = layer.apply({"params": params}, h)
    grads = {k: weighting.last_layer_grads(h, jax.grad(f)(stats)) for k, f in losses.items()}
    terms = {k: grads[k] for k in ("mcos", "mdms")}
    w = weighting.adaptive_weights(grads["rec"], terms)
    g_rec, n_rec = _brute(params, layer, h, losses["rec"])
    for k in terms:
        _, n_k = _brute(params, layer, h, losses[k])
        np.testing.assert_allclose(w[k], n_rec / (n_k + 1e-6), rtol=1e-5)
    shared = weighting.adaptive_weights(grads["rec"], terms, shared=True)
    _, n_sum = _brute(params, layer, h, lambda st: losses["mcos"](st) + losses["mdms"](st))
    for k in terms:
        np.testing.assert_allclose(shared[k], n_rec / (n_sum + 1e-6), rtol=1e-5)
    clamped = weighting.adaptive_weights(grads["rec"], terms, clamp=(0.5, 0.6))
    for k in terms:
        np.testing.assert_allclose(clamped[k], np.clip(w[k], 0.5, 0.6), rtol=1e-6)


def test_adaptive_weights_are_constants_for_backward():
    h, layer, params, losses = _setup()

    def weighted(pp):
        stats = layer.apply({"params": pp}, h)
        g = {k: weighting.last_layer_grads(h, jax.grad(f)(stats)) for k, f in losses.items()}
        w = weighting.adaptive_weights(g["rec"], {"mcos": g["mcos"]})
        return w["mcos"] * losses["mcos"](stats), w["mcos"]

    g, w = jax.grad(weighted, has_aux=True)(params)
    want = jax.grad(lambda pp: losses["mcos"](layer.apply({"params": pp}, h)))(params)
    np.testing.assert_allclose(g["kernel"], w * want["kernel"], rtol=1e-5, atol=1e-8)


def test_zero_term_gradient_gives_finite_weight():
    ref = {"kernel": jnp.ones((2, 2))}
    w = weighting.adaptive_weights(ref, {"k": {"kernel": jnp.zeros((2, 2))}}, eps=1e-6)
    np.testing.assert_allclose(w["k"], 2.0 / 1e-6, rtol=1e-5)


def _sched(kind, **kw):
    return ConfigDict(dict(kind=kind, warmup_steps=100, boundaries=(10, 30),
                           stage_scales=(1.0, 0.2, 0.3), **kw))


def test_schedules_at_boundaries_under_jit():
    def at(cfg, step):
        out = jax.jit(lambda s: weighting.schedule_factors(cfg, s))(jnp.int32(step))
        return float(out["weight_scale"]), bool(out["margins_on"])

    assert at(_sched("fixed"), 0) == (1.0, True)
    assert at(_sched("fixed"), 10 ** 6) == (1.0, True)
    warm = _sched("warmup")
    assert at(warm, 0) == (0.0, True)
    assert at(warm, 50) == (0.5, True)
    assert at(warm, 100) == (1.0, True)
    assert at(warm, 1000) == (1.0, True)
    staged = _sched("staged")
    assert at(staged, 0) == (1.0, False)
    assert at(staged, 9) == (1.0, False)
    assert at(staged, 10)[0] == pytest.approx(0.2) and not at(staged, 10)[1]
    assert at(staged, 29)[0] == pytest.approx(0.2) and not at(staged, 29)[1]
    assert at(staged, 30)[0] == pytest.approx(0.3) and at(staged, 30)[1]


def test_bad_schedule_and_shapes_raise():
    with pytest.raises(ValueError, match="kind"):
        weighting.schedule_factors(_sched("cosine"), 0)
    with pytest.raises(ValueError, match="boundaries"):
        weighting.schedule_factors(ConfigDict(dict(kind="staged", boundaries=(30, 10),
                                                   stage_scales=(1, 1, 1))), 0)
    with pytest.raises(ValueError, match="cotangent"):
        weighting.last_layer_grads(jnp.zeros((2, 3, 4)), jnp.zeros((2, 4, 5)))


def test_staged_boundaries_as_fractions_of_the_run():
    cfg = ConfigDict(dict(kind="staged", boundaries=(100 / 130, 115 / 130), boundaries_unit="fraction",
                          stage_scales=(5.0, 1.0, 1.0)))
    got = {s: weighting.schedule_factors(cfg, s, total_steps=1300) for s in (0, 999, 1000, 1149, 1150, 1299)}
    assert [float(f["weight_scale"]) for f in got.values()] == [5.0, 5.0, 1.0, 1.0, 1.0, 1.0]
    assert [bool(f["margins_on"]) for f in got.values()] == [False, False, False, False, True, True]
    with pytest.raises(ValueError, match="total steps"):
        weighting.schedule_factors(cfg, 0)
