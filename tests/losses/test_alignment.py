"""Alignment terms against independent numpy references written from METHOD.md's equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from speechvae_jax.losses import alignment as A
from speechvae_jax.presets.alignment import SCHEMES, alignment_config

B, T, D = 3, 7, 5


# ---------------------------------------------------------------- numpy references

def np_cos(a, b):
    na = np.maximum(np.linalg.norm(a, axis=-1), 1e-8)
    nb = np.maximum(np.linalg.norm(b, axis=-1), 1e-8)
    return np.sum(a * b, -1) / (na * nb)


def np_log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def ref_time_cos(p, s, m):
    return -np.mean(np_cos(p[m], s[m]))


def ref_st_t(p, s, m, lam):
    return np.mean(np.abs(p[m] - s[m])) + lam * np.mean(-np_log_sigmoid(np_cos(p[m], s[m])))


def ref_d_axis(p, s, m):
    per_item = []
    for b in range(p.shape[0]):
        if not m[b].any():
            continue
        x, y = p[b][m[b]].T, s[b][m[b]].T  # [D, T_b]
        per_item.append(-np.mean(np_log_sigmoid(np_cos(x, y))))
    return np.mean(per_item)


def ref_mcos(p, s, m, margin):
    return np.mean(np.maximum(1 - margin - np_cos(p[m], s[m]), 0))


def ref_pairs(p, s, margin):
    """All pair values |cos(p_i,p_j) - cos(s_i,s_j)| - margin, ReLU'd, for frames p [n,D]."""
    cp = np.array([[np_cos(a, b) for b in p] for a in p])
    cs = np.array([[np_cos(a, b) for b in s] for a in s])
    return np.maximum(np.abs(cp - cs) - margin, 0).ravel()


def ref_mdms(p, s, m, margin, pooling):
    if pooling == "utterance":
        vals = np.concatenate([ref_pairs(p[b][m[b]], s[b][m[b]], margin) for b in range(len(p))])
        return vals.mean()
    return ref_pairs(p[m], s[m], margin).mean()


@pytest.fixture
def data():
    r = np.random.default_rng(0)
    p = r.normal(size=(B, T, D)).astype(np.float32)
    s = (0.6 * p + r.normal(size=(B, T, D))).astype(np.float32)
    m = np.ones((B, T), bool)
    m[0, 5:] = False
    m[2, 3:] = False
    return p, s, m


# ---------------------------------------------------------------- values

def test_frame_terms_match_reference(data):
    p, s, m = data
    np.testing.assert_allclose(A.time_axis_cosine(p, s, m), ref_time_cos(p, s, m), rtol=1e-5)
    np.testing.assert_allclose(A.speechtokenizer_t_axis(p, s, m, 0.7), ref_st_t(p, s, m, 0.7), rtol=1e-5)
    np.testing.assert_allclose(A.d_axis(p, s, m), ref_d_axis(p, s, m), rtol=1e-5)
    for margin in (0.0, 0.5, 1.2):
        np.testing.assert_allclose(A.marginal_cosine(p, s, m, margin), ref_mcos(p, s, m, margin),
                                   rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pooling", ["batch", "utterance"])
@pytest.mark.parametrize("block", [None, 3, 64])
def test_distance_matrix_matches_reference(data, pooling, block):
    p, s, m = data
    s4 = s[..., :4]  # the matrix term allows different widths
    for margin in (0.0, 0.25):
        got = A.marginal_distance_matrix(p, s4, m, margin, pooling, block)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, ref_mdms(p, s4, m, margin, pooling), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pooling", ["batch", "utterance"])
def test_blockwise_gradient_equals_naive(data, pooling):
    p, s, m = data
    def loss(block):
        return jax.jit(jax.value_and_grad(
            lambda p, s: A.marginal_distance_matrix(p, s, m, 0.1, pooling, block), argnums=(0, 1)))
    v0, (gp0, gs0) = loss(None)(p, s)
    v1, (gp1, gs1) = loss(4)(p, s)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    assert np.abs(gp0).max() > 1e-4
    np.testing.assert_allclose(gp1, gp0, atol=1e-7)
    np.testing.assert_allclose(gs1, gs0, atol=1e-7)


def test_joint_marginal_and_two_layers(data):
    p, s, m = data
    s_low = np.flip(s, -1).copy()
    out = A.joint_marginal(p, s, m, 0.5, 0.25, s_low=s_low)
    np.testing.assert_allclose(out["mcos"], ref_mcos(p, s, m, 0.5), rtol=1e-5)
    np.testing.assert_allclose(out["mdms"], ref_mdms(p, s_low, m, 0.25, "batch"), rtol=1e-5)


def test_global_pooling_on_8_devices_equals_batch():
    devices = jax.devices()
    assert len(devices) == 8, "conftest provides 8 host devices"
    r = np.random.default_rng(1)
    p = r.normal(size=(8, 6, D)).astype(np.float32)
    s = r.normal(size=(8, 6, 3)).astype(np.float32)
    m = r.random((8, 6)) > 0.3
    m[3] = False  # a device whose frames are all padding
    mesh = Mesh(np.array(devices), ("data",))

    def glob(block):
        f = lambda p, s, m: A.marginal_distance_matrix(p, s, m, 0.2, "global", block, "data")
        sm = jax.shard_map(f, mesh=mesh, in_specs=(P("data"),) * 3, out_specs=P())
        return jax.jit(jax.value_and_grad(sm, argnums=(0, 1)))

    want, (wp, ws) = jax.value_and_grad(
        lambda p, s: A.marginal_distance_matrix(p, s, m, 0.2, "batch"), argnums=(0, 1))(p, s)
    np.testing.assert_allclose(want, ref_mdms(p, s, m, 0.2, "batch"), rtol=1e-5)
    for block in (None, 4):
        got, (gp, gs) = glob(block)(p, s, m)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        np.testing.assert_allclose(gp, wp, atol=1e-7)
        np.testing.assert_allclose(gs, ws, atol=1e-7)


def test_global_pooling_from_a_jitted_step_on_a_2d_mesh():
    r = np.random.default_rng(6)
    p = r.normal(size=(8, 5, D)).astype(np.float32)
    s = r.normal(size=(8, 5, D)).astype(np.float32)
    m = r.random((8, 5)) > 0.3
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "fsdp"))
    sharding = jax.sharding.NamedSharding(mesh, P(("data", "fsdp")))
    ps, ss, ms = (jax.device_put(x, sharding) for x in (p, s, m))
    cfg = alignment_config("distance_matrix")
    cfg.pooling, cfg.block_size = "global", 3

    def loss(p, s, m, on):
        return A.alignment_terms(cfg, p, s, m, margins_on=on, mesh=mesh)["mdms"]

    got, grad = jax.jit(jax.value_and_grad(loss))(ps, ss, ms, False)
    want, want_grad = jax.value_and_grad(
        lambda p: A.marginal_distance_matrix(p, s, m, 0.0, "batch"))(p)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, atol=1e-7)


# ---------------------------------------------------------------- behaviour

def test_padded_frames_never_count(data):
    p, s, m = data
    p2, s2 = p.copy(), s.copy()
    p2[~m] = 1e3 * np.random.default_rng(5).normal(size=p2[~m].shape)
    s2[~m] = -7.0
    fns = [A.time_axis_cosine, A.speechtokenizer_t_axis, A.d_axis, A.marginal_cosine,
           lambda p, s, m: A.marginal_distance_matrix(p, s, m, 0.1, "batch", 4),
           lambda p, s, m: A.marginal_distance_matrix(p, s, m, 0.1, "utterance")]
    for fn in fns:
        vg = jax.jit(jax.value_and_grad(fn))
        (v1, g), (v0, _) = vg(p2, s2, m), vg(p, s, m)
        np.testing.assert_allclose(v1, v0, rtol=1e-5)
        assert np.all(np.isfinite(g)) and np.all(g[~m] == 0.0)


def test_all_padding_gives_zero_not_nan(data):
    p, s, _ = data
    m = np.zeros((B, T), bool)
    for fn in (A.time_axis_cosine, A.speechtokenizer_t_axis, A.d_axis, A.marginal_cosine,
               A.marginal_distance_matrix):
        assert float(fn(p, s, m)) == 0.0
        assert np.all(jax.grad(fn)(p, s, m) == 0.0)


def test_marginal_cosine_margin_gives_exact_zero_gradient():
    r = np.random.default_rng(2)
    s = r.normal(size=(1, 6, D)).astype(np.float32)
    p = (-s + 0.01 * r.normal(size=(1, 6, D))).astype(np.float32)  # cos ~ -1: inside the margin
    p[0, :3] = s[0, :3] + 0.01 * r.normal(size=(3, D))  # cos ~ 1 > 1 - margin: past it
    m = np.ones((1, 6), bool)
    g = np.asarray(jax.grad(A.marginal_cosine)(p, s, m, 0.5))
    assert np.all(g[0, :3] == 0.0)
    assert np.all(np.abs(g[0, 3:]).sum(-1) > 0)


@pytest.mark.parametrize("block", [None, 2])
def test_distance_matrix_within_margin_gives_exact_zero_gradient(block):
    r = np.random.default_rng(3)
    s = r.normal(size=(2, 4, D)).astype(np.float32)
    p = (s * 3.0 + 0.01 * r.normal(size=s.shape)).astype(np.float32)  # same geometry
    m = np.ones((2, 4), bool)
    loss = lambda p: A.marginal_distance_matrix(p, s, m, 0.25, "batch", block)
    assert float(loss(p)) == 0.0
    assert np.all(np.asarray(jax.grad(loss)(p)) == 0.0)
    assert np.abs(np.asarray(jax.grad(
        lambda p: A.marginal_distance_matrix(p, s, m, 0.0, "batch", block))(p))).max() > 0


def test_cosine_terms_are_scale_invariant(data):
    p, s, m = data
    frame_scale = np.random.default_rng(4).uniform(0.1, 10, size=(B, T, 1)).astype(np.float32)
    for fn in (A.time_axis_cosine, A.marginal_cosine, A.marginal_distance_matrix):
        np.testing.assert_allclose(fn(p * frame_scale, s, m), fn(p, s, m), rtol=1e-5)
    dim_scale = np.linspace(0.2, 5, D).astype(np.float32)
    np.testing.assert_allclose(A.d_axis(p * dim_scale, s, m), A.d_axis(p, s, m), rtol=1e-5)


def test_bfloat16_inputs_compute_in_float32(data):
    p, s, m = data
    pb, sb = jnp.asarray(p, jnp.bfloat16), jnp.asarray(s, jnp.bfloat16)
    for fn in (A.time_axis_cosine, A.d_axis, A.marginal_cosine, A.marginal_distance_matrix):
        got = fn(pb, sb, m)
        assert got.dtype == jnp.float32
        want = fn(np.asarray(pb, np.float32), np.asarray(sb, np.float32), m)
        np.testing.assert_allclose(got, want, rtol=1e-6)


# ---------------------------------------------------------------- config entry point

def test_alignment_terms_follow_the_scheme(data):
    p, s, m = data
    expected = {"joint_marginal": {"mcos", "mdms"}, "time_axis": {"time_cos"},
                "speechtokenizer_t": {"st_t"}, "d_axis": {"d_axis"}, "marginal_cosine": {"mcos"},
                "distance_matrix": {"mdms"}, "none": set()}
    for scheme in SCHEMES:
        cfg = alignment_config(scheme)
        terms = A.alignment_terms(cfg, p, s, m)
        assert set(terms) == expected[scheme] == set(A.term_names(cfg))
    cfg = alignment_config("joint_marginal")
    terms = jax.jit(lambda p, s, on: A.alignment_terms(cfg, p, s, m, margins_on=on))(p, s, False)
    np.testing.assert_allclose(terms["mcos"], ref_mcos(p, s, m, 0.0), rtol=1e-5)
    np.testing.assert_allclose(terms["mdms"], ref_mdms(p, s, m, 0.0, "batch"), rtol=1e-5)
    cfg.term_weights.mdms = 0.0
    assert A.term_names(cfg) == ("mcos",)
    cfg.hyper_weight = 0.0
    assert A.term_names(cfg) == ()


def test_alignment_terms_two_teacher_layers(data):
    p, s, m = data
    cfg = alignment_config("joint_marginal")
    cfg.teacher_layer_low = 12
    cfg.block_size = 4
    with pytest.raises(ValueError, match="s_low"):
        A.alignment_terms(cfg, p, s, m)
    s_low = s[..., ::-1] * 2 + 1
    terms = A.alignment_terms(cfg, p, s, m, s_low=s_low)
    np.testing.assert_allclose(terms["mcos"], ref_mcos(p, s, m, 0.5), rtol=1e-5)
    np.testing.assert_allclose(terms["mdms"], ref_mdms(p, s_low, m, 0.25, "batch"), rtol=1e-5)


def test_bad_inputs_raise_clear_errors(data):
    p, s, m = data
    with pytest.raises(ValueError, match="widths differ"):
        A.time_axis_cosine(p, s[..., :3], m)
    with pytest.raises(ValueError, match="mask"):
        A.marginal_cosine(p, s, m[:, :3])
    with pytest.raises(ValueError, match="pooling"):
        A.marginal_distance_matrix(p, s, m, pooling="pairs")
    with pytest.raises(ValueError, match="axis_name"):
        A.marginal_distance_matrix(p, s, m, pooling="global")
    with pytest.raises(ValueError, match="block_size"):
        A.marginal_distance_matrix(p, s, m, block_size=0)
    cfg = alignment_config("time_axis")
    cfg.scheme = "cosine"
    with pytest.raises(ValueError, match="scheme"):
        A.alignment_terms(cfg, p, s, m)
    with pytest.raises(ValueError, match="scheme"):
        alignment_config("cosine")


def test_device_pooling_averages_the_pools_of_consecutive_items():
    r = np.random.default_rng(3)
    p = r.normal(size=(8, 5, D)).astype(np.float32)
    s = r.normal(size=(8, 5, 3)).astype(np.float32)
    m = r.random((8, 5)) > 0.3
    m[5] = False
    for k in (1, 2, 4):
        # a pool without real frames contributes 0 (the all-padding convention), and still counts
        want = np.mean([ref_mdms(p[i:i + k], s[i:i + k], m[i:i + k], 0.2, "batch") if m[i:i + k].any() else 0.0
                        for i in range(0, 8, k)])
        got = A.marginal_distance_matrix(p, s, m, 0.2, "device", pool_items=k)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        blocked = A.marginal_distance_matrix(p, s, m, 0.2, "device", block_size=3, pool_items=k)
        np.testing.assert_allclose(blocked, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(A.marginal_distance_matrix(p, s, m, 0.2, "device"),
                               ref_mdms(p, s, m, 0.2, "batch"), rtol=1e-5)       # one pool: the batch
    with pytest.raises(ValueError, match="pool_items"):
        A.marginal_distance_matrix(p, s, m, 0.2, "device", pool_items=3)


def test_device_pooling_in_a_jitted_step_pools_each_devices_own_batch():
    r = np.random.default_rng(8)
    p = r.normal(size=(16, 5, D)).astype(np.float32)
    s = r.normal(size=(16, 5, D)).astype(np.float32)
    m = r.random((16, 5)) > 0.2
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "fsdp"))
    sharding = jax.sharding.NamedSharding(mesh, P(("data", "fsdp")))
    cfg = alignment_config("distance_matrix")
    cfg.pooling = "device"
    assert A.device_pool_items(cfg, 16, mesh) == 2 and A.device_pool_items(cfg, 16) == 16
    got = jax.jit(lambda p, s, m: A.alignment_terms(cfg, p, s, m, mesh=mesh)["mdms"])(
        *(jax.device_put(x, sharding) for x in (p, s, m)))
    want = np.mean([ref_mdms(p[i:i + 2], s[i:i + 2], m[i:i + 2], 0.25, "batch") for i in range(0, 16, 2)])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    cfg.pool_items = 4                                  # the release's pools, whatever the mesh
    got4 = A.alignment_terms(cfg, p, s, m, mesh=mesh)["mdms"]
    want4 = np.mean([ref_mdms(p[i:i + 4], s[i:i + 4], m[i:i + 4], 0.25, "batch") for i in range(0, 16, 4)])
    np.testing.assert_allclose(got4, want4, rtol=1e-5)
