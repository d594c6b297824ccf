"""Projection heads, latent sub-space alignment, and gradient flow from every alignment term."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.losses import alignment
from speechvae_jax.models.projection import align_subspace, make_projection
from speechvae_jax.presets.alignment import SCHEMES, alignment_config

B, T, L, DT = 2, 5, 8, 12


def _inputs():
    r = np.random.default_rng(0)
    z = jnp.asarray(r.normal(size=(B, T, L)), jnp.float32)
    s = jnp.asarray(r.normal(size=(B, T, DT)), jnp.float32)
    mask = jnp.asarray(np.arange(T)[None] < np.array([[T], [3]]))
    return z, s, mask


def _cfg(scheme="joint_marginal", projection="linear"):
    cfg = alignment_config(scheme)
    cfg.projection = projection
    return cfg


def test_linear_head_is_an_affine_map_to_teacher_space():
    z, s, _ = _inputs()
    proj = make_projection(_cfg(), DT)
    params = proj.init(jax.random.PRNGKey(0), z)["params"]
    p = proj.apply({"params": params}, z)
    w, b = params["latent_to_teacher"]["kernel"], params["latent_to_teacher"]["bias"]
    assert w.shape == (L, DT)
    np.testing.assert_allclose(p, np.asarray(z) @ np.asarray(w) + np.asarray(b), rtol=1e-5)
    assert proj.apply({"params": params}, s, method="teacher") is s


def test_mlp_head_shapes():
    z, s, _ = _inputs()
    cfg = _cfg(projection="mlp")
    cfg.projection_hidden = 7
    proj = make_projection(cfg, DT)
    params = proj.init(jax.random.PRNGKey(0), z)["params"]
    assert params["latent_to_teacher"]["hidden"]["kernel"].shape == (L, 7)
    assert proj.apply({"params": params}, z).shape == (B, T, DT)


def test_reverse_head_projects_the_teacher_to_latent_space():
    z, s, _ = _inputs()
    cfg = _cfg(projection="reverse")
    cfg.teacher_layer_low = 3
    proj = make_projection(cfg, DT, latent_dim=L)
    params = proj.init(jax.random.PRNGKey(0), z)["params"]  # teacher inputs not needed at init
    assert params["teacher_to_latent"]["kernel"].shape == (DT, L)
    assert params["teacher_low_to_latent"]["kernel"].shape == (DT, L)
    np.testing.assert_allclose(proj.apply({"params": params}, z), z)
    w, b = params["teacher_to_latent"]["kernel"], params["teacher_to_latent"]["bias"]
    s_proj = proj.apply({"params": params}, s, method="teacher")
    np.testing.assert_allclose(s_proj, np.asarray(s) @ np.asarray(w) + np.asarray(b), rtol=1e-5)
    s_low = proj.apply({"params": params}, 2 * s, low=True, method="teacher")
    assert s_low.shape == (B, T, L)
    cfg.teacher_layer_low = None
    cfg.subspace_ratio = 0.5
    single = make_projection(cfg, DT, latent_dim=L)
    params = single.init(jax.random.PRNGKey(0), z[..., :4])["params"]
    assert set(params) == {"teacher_to_latent"} and params["teacher_to_latent"]["kernel"].shape == (DT, 4)
    with pytest.raises(ValueError, match="teacher_layer_low"):
        single.apply({"params": params}, s, low=True, method="teacher")


def test_unknown_projection_raises():
    with pytest.raises(ValueError, match="projection"):
        make_projection(_cfg(projection="conv"), DT)


@pytest.mark.parametrize("projection", ["linear", "reverse"])
def test_every_term_reaches_encoder_projection_and_latent(projection):
    """encoder (a Dense on features) -> z -> projection -> each scheme's terms: all get gradient."""
    z_in, s, mask = _inputs()
    encoder = nn.Dense(L)
    enc_params = encoder.init(jax.random.PRNGKey(1), z_in)["params"]
    for scheme in SCHEMES[:-1]:
        cfg = _cfg(scheme, projection)
        proj = make_projection(cfg, DT, latent_dim=L)
        proj_params = proj.init(jax.random.PRNGKey(0), z_in)["params"]
        for name in alignment.term_names(cfg):
            def loss(ep, pp):
                z = encoder.apply({"params": ep}, z_in)
                p = proj.apply({"params": pp}, z)
                s_cmp = proj.apply({"params": pp}, s, method="teacher")
                return alignment.alignment_terms(cfg, p, s_cmp, mask)[name]
            g_enc, g_proj = jax.grad(loss, argnums=(0, 1))(enc_params, proj_params)
            for g in jax.tree_util.tree_leaves((g_enc, g_proj)):
                assert np.all(np.isfinite(g)) and np.abs(g).max() > 0, (scheme, name)


def test_align_subspace_cuts_the_aligned_channels_from_the_decoder():
    z, _, _ = _inputs()
    aligned, dec = align_subspace(z, 0.25)
    assert aligned.shape == (B, T, 2) and dec.shape == z.shape
    np.testing.assert_allclose(dec, z)
    np.testing.assert_allclose(aligned, z[..., :2])
    g_dec = jax.grad(lambda z: jnp.sum(align_subspace(z, 0.25)[1] ** 2))(z)
    assert np.all(g_dec[..., :2] == 0) and np.all(g_dec[..., 2:] != 0)
    g_al = jax.grad(lambda z: jnp.sum(align_subspace(z, 0.25)[0] ** 2))(z)
    assert np.all(g_al[..., :2] != 0) and np.all(g_al[..., 2:] == 0)
    full_al, full_dec = align_subspace(z, 1.0)
    g_full = jax.grad(lambda z: jnp.sum(align_subspace(z, 1.0)[1] ** 2))(z)
    assert full_al is z and full_dec is z and np.all(g_full != 0)
    with pytest.raises(ValueError, match="subspace_ratio"):
        align_subspace(z, 0.0)
