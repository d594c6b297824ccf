import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.generate.config import tts_config
from speechvae_jax.generate.dit import DiT, make_dit, rotary, sinusoidal
from speechvae_jax.generate.text import check_text_config
from speechvae_jax.presets.run import load_config_file
from tests.generate.conftest import SMALL, dit_inputs, perturbed


def test_sinusoidal_and_rotary():
    emb = sinusoidal(jnp.array([0.0, 1.0]), 4)
    np.testing.assert_allclose(emb, [[0, 0, 1, 1], [np.sin(1), np.sin(1e-2), np.cos(1), np.cos(1e-2)]], rtol=1e-6)
    q = jax.random.normal(jax.random.key(0), (1, 6, 1, 8))
    k = jax.random.normal(jax.random.key(1), (1, 6, 1, 8))
    rq, rk = rotary(q), rotary(k)
    np.testing.assert_allclose(jnp.linalg.norm(rq, axis=-1), jnp.linalg.norm(q, axis=-1), rtol=1e-5)
    # Scores depend on relative position only: shifting both sequences leaves q_i . k_j unchanged.
    shifted_q = rotary(jnp.concatenate([jnp.zeros((1, 2, 1, 8)), q], 1))[:, 2:]
    shifted_k = rotary(jnp.concatenate([jnp.zeros((1, 2, 1, 8)), k], 1))[:, 2:]
    np.testing.assert_allclose(jnp.einsum("bqhd,bkhd->qk", shifted_q, shifted_k),
                               jnp.einsum("bqhd,bkhd->qk", rq, rk), rtol=1e-4, atol=1e-4)


def test_shapes_and_identity_start(small):
    _, apply, params, inp = small
    out = apply({"params": params}, **inp)
    assert out.shape == (2, 12, 8) and out.dtype == jnp.float32
    # Zero-initialised modulation: every block starts as the identity, so the frames' velocities
    # depend on their own inputs only (no attention, no MLP yet).
    other = dict(inp, x=inp["x"].at[:, 0].set(5.0))
    # Frame 0 reaches frames 1-4 through the two kernel-5 position convs only.
    np.testing.assert_allclose(apply({"params": params}, **other)[:, 5:], out[:, 5:], rtol=1e-5, atol=1e-5)


def test_padding_invariance(small):
    _, apply, params, inp = small
    params = perturbed(params)
    out = apply({"params": params}, **inp)
    assert np.all(np.isfinite(out))
    # Content of padded frames (row 1, frames 8..11) does not reach the real frames.
    noisy = dict(inp)
    for key in ("x", "cond"):
        noisy[key] = inp[key].at[1, 8:].set(100.0)
    noisy["tokens"] = inp["tokens"].at[1, 8:].set(11)
    out2 = apply({"params": params}, **noisy)
    np.testing.assert_allclose(out2[1, :8], out[1, :8], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out2[0], out[0])


def test_conditioning_reaches_the_output_and_drops_remove_it(small):
    _, jitted, params, inp = small
    params = perturbed(params)
    apply = lambda **kw: jitted({"params": params}, **{**inp, **kw})
    base = apply()
    other_cond, other_tokens = inp["cond"] + 1.0, (inp["tokens"] + 1) % 12
    assert not np.allclose(apply(cond=other_cond), base)
    assert not np.allclose(apply(tokens=other_tokens), base)
    drop = jnp.ones(2, bool)
    np.testing.assert_allclose(apply(cond=other_cond, drop_audio=drop), apply(drop_audio=drop), atol=1e-6)
    np.testing.assert_allclose(apply(tokens=other_tokens, drop_text=drop), apply(drop_text=drop), atol=1e-6)


def test_gradients_are_finite_when_a_row_has_no_text(small):
    # Text dropped for guidance (or all FILLER) leaves every channel of the text ConvNeXt at zero for that
    # row; the response norm's sqrt must not turn that into NaN gradients (the demo's TTS diverged on it).
    model, _, params, inp = small
    params = perturbed(params)

    def loss(p, **kw):
        return jnp.sum(model.apply({"params": p}, **{**inp, **kw}) ** 2)

    for kw in ({"drop_text": jnp.array([True, False])}, {"tokens": jnp.zeros_like(inp["tokens"])}):
        grads = jax.grad(loss)(params, **kw)
        bad = [jax.tree_util.keystr(k) for k, g in jax.tree_util.tree_leaves_with_path(grads)
               if not np.isfinite(np.asarray(g)).all()]
        assert not bad, (kw, bad[:3])


def test_bad_heads_are_reported():
    with pytest.raises(ValueError, match="heads"):
        jax.eval_shape(DiT(**{**SMALL, "heads": 3}).init, jax.random.key(0), **dit_inputs())


def test_paper_config_shapes():
    cfg = load_config_file("tts_paper")
    assert (cfg.model.width, cfg.model.depth, cfg.model.heads) == (768, 18, 12)
    assert (cfg.text.mode, cfg.text.units) == ("filler", "chars")
    model = make_dit(cfg.model, check_text_config(cfg.text).size)
    b, t, latent = 2, 400, cfg.model.latent_dim
    args = (jnp.zeros((b, t, latent)), jnp.zeros((b, t, latent)), jnp.zeros((b, t), jnp.int32), jnp.zeros(b),
            jnp.ones((b, t), bool), jnp.zeros(b, bool), jnp.zeros(b, bool))
    params = jax.eval_shape(model.init, jax.random.key(0), *args)["params"]
    count = sum(x.size for x in jax.tree.leaves(params))
    assert 140e6 < count < 170e6, count  # F5-TTS Small is about 155 M parameters
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    out = jax.eval_shape(model.apply, {"params": params}, *args)
    assert out.shape == (b, t, latent) and out.dtype == jnp.float32
    assert tts_config("tiny").model.dtype == "float32"
