import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from speechvae_jax.losses.kl import vae_kl
from speechvae_jax.losses.spectral import multi_resolution_stft_loss
from speechvae_jax.models import bottleneck
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import loss_config, model_config


def _count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def tiny():
    model = SpeechVAE(model_config("tiny"))
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
    return model, params


def _speechlike(n, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 8))
    return (0.2 * voiced[None] + 0.01 * rng.normal(size=(batch, n))).astype(np.float32)


def test_frame_rate_and_shapes(tiny):
    model, params = tiny
    v = {"params": params}
    h = jax.eval_shape(lambda a: model.apply(v, a, method=model.encode_features), jnp.zeros((2, 16000)))
    assert h.shape[:2] == (2, 40)
    stats = jax.jit(lambda a: model.apply(v, a, method=model.encode_head))(jnp.zeros(h.shape, h.dtype))
    assert stats.shape == (2, 40, 128) and stats.dtype == jnp.float32
    h41 = jax.eval_shape(lambda a: model.apply(v, a, method=model.encode_features), jnp.zeros((2, 16001)))
    assert h41.shape[1] == 41
    audio = jax.eval_shape(lambda a: model.apply(v, a, method=model.decode), jnp.zeros((2, 40, 64)))
    assert audio.shape == (2, 16000) and audio.dtype == jnp.float32
    last = params["encoder"]["last"]
    assert last["kernel"].shape == (h.shape[-1], 128) and last["bias"].shape == (128,)
    out, mean, sigma = jax.jit(lambda a: model.apply(v, a, True, rngs={"sample": jax.random.key(2)}))(
        jnp.asarray(_speechlike(1200)))
    assert np.all(np.isfinite(out)) and float(jnp.abs(out).max()) <= 1.0
    assert out.shape == (1, 1200) and mean.shape == sigma.shape == (1, 3, 64)


def test_bottleneck():
    stats = jnp.arange(8.0).reshape(1, 1, 8)
    mean, scale = bottleneck.split_stats(stats)
    np.testing.assert_array_equal(mean, [[[0, 1, 2, 3]]])
    np.testing.assert_allclose(bottleneck.sigma_from_scale(scale), np.log1p(np.exp([[[4, 5, 6, 7.0]]])) + 1e-4,
                               rtol=1e-6)
    assert float(bottleneck.sigma_from_scale(jnp.array(-100.0))) == pytest.approx(1e-4)
    z = bottleneck.sample(jnp.full((4, 500, 8), 2.0), jnp.full((4, 500, 8), 0.5), jax.random.key(0))
    assert abs(float(z.mean()) - 2.0) < 0.02 and abs(float(z.std()) - 0.5) < 0.02
    with pytest.raises(ValueError, match="even"):
        bottleneck.split_stats(jnp.zeros((1, 1, 3)))


def test_bad_hop_is_reported(tiny):
    cfg = model_config("tiny")
    cfg.hop = 320
    with pytest.raises(ValueError, match="model.hop=320"):
        SpeechVAE(cfg).init(jax.random.key(0), jnp.zeros((1, 800)))


def test_bad_upsample_kind_is_reported():
    cfg = model_config("tiny")
    cfg.decoder.upsample = "nearest"
    with pytest.raises(ValueError, match="decoder.upsample"):
        jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))


def test_bf16_compute_keeps_float32_params_and_outputs():
    cfg = model_config("tiny")
    cfg.dtype = "bfloat16"
    model = SpeechVAE(cfg)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 800)))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
    out, mean, sigma = jax.eval_shape(model.apply, variables, jnp.zeros((1, 800)))
    assert out.dtype == mean.dtype == sigma.dtype == jnp.float32


def _loss(model, params, audio, rng):
    v = {"params": params}
    stats = model.apply(v, model.apply(v, audio, method=model.encode_features), method=model.encode_head)
    mean, scale = bottleneck.split_stats(stats)
    sigma = bottleneck.sigma_from_scale(scale)
    z = bottleneck.sample(mean, sigma, rng)
    recon = model.apply(v, z, method=model.decode)
    return multi_resolution_stft_loss(recon, audio) + 1e-3 * vae_kl(mean, sigma)


@pytest.mark.slow
def test_gradient_flow_and_optimiser_steps_reduce_mrstft_loss(tiny):
    model, params = tiny
    audio = jnp.asarray(_speechlike(4000))
    opt = optax.adam(1e-3)
    grad_fn = jax.jit(jax.value_and_grad(lambda p, r: _loss(model, p, audio, r)))

    loss0, grads = grad_fn(params, jax.random.key(0))
    for part in ("encoder", "decoder"):
        leaves = jax.tree.leaves(grads[part])
        assert all(np.all(np.isfinite(g)) for g in leaves)
        nonzero = sum(float(jnp.abs(g).sum()) > 0 for g in leaves)
        assert nonzero == len(leaves), f"{part}: {len(leaves) - nonzero} parameters get no gradient"

    opt_state = opt.init(params)
    losses = [float(loss0)]
    for i in range(12):
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        loss, grads = grad_fn(params, jax.random.key(i + 1))
        losses.append(float(loss))
    assert losses[-1] < 0.85 * losses[0], losses


def test_paper_scale_parameter_counts():
    model = SpeechVAE(model_config("paper"))
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 800))))["params"]
    # The PyTorch builds (tests/parity): DAC Encoder(128, [4,4,5,5], 2048) + proj_out, BigVGAN generator.
    assert _count(params["encoder"]) == 73_845_120
    assert _count(params["decoder"]) == 12_954_050
    assert params["encoder"]["last"]["kernel"].shape == (2048, 128)
    assert "gain" not in params["encoder"]["last"]  # proj_out is a plain conv
    assert params["encoder"]["conv_out"]["kernel"].shape == (3, 2048, 2048)
    assert params["decoder"]["SubPixelUpsample_0"]["gain"].shape == (512,)  # per input channel, as torch dim 0


def test_presets():
    for size in ("tiny", "paper"):
        cfg, loss = model_config(size), loss_config(size)
        assert cfg.latent_dim == 64 and cfg.hop == 400 and cfg.sample_rate == 16000
        assert loss.stft_weight == 1.0 and loss.kl_weight == 1e-3 and loss.adversarial_weight == 0.1
        assert loss.feature_matching_weight == 2.0 and loss.time_l1_weight == 0.0
    with pytest.raises(ValueError, match="unknown preset"):
        model_config("huge")


def _init_scales(cfg):
    """(std of the latent mean, std of decode(N(0, 1)), mean sigma) at init for speech-like input."""
    model = SpeechVAE(cfg)
    audio = jnp.asarray(_speechlike(8000, batch=2))
    v = jax.jit(model.init)(jax.random.key(0), audio)
    _, mean, sigma = jax.jit(model.apply)(v, audio)
    z = jax.random.normal(jax.random.key(1), mean.shape)
    out = jax.jit(lambda z: model.apply(v, z, method=model.decode))(z)
    return float(mean.std()), float(out.std()), float(sigma.mean())


def test_fan_in_trunk_init_keeps_the_signal_scale_and_release_init_shrinks_it():
    cfg = model_config("tiny")
    assert cfg.trunk_init == "fan_in"
    mean_std, out_std, sigma = _init_scales(cfg)
    # Input std ~0.15: the latent mean and a decoded unit-variance latent stay O(0.1 .. 1).
    assert 0.02 < mean_std < 2.0 and 0.05 < out_std < 2.0
    # sigma = softplus(bias + W h): the bias sets it, W h (~0.1) only perturbs it.
    assert sigma == pytest.approx(float(jax.nn.softplus(cfg.encoder.scale_bias_init)) + 1e-4, rel=0.05)
    cfg.trunk_init, cfg.encoder.scale_bias_init = "release", 0.0
    mean_std, out_std, sigma = _init_scales(cfg)
    # The release's N(0, 0.02^2) / N(0, 0.01^2) convs without weight norm, at tiny widths.
    assert mean_std < 1e-3 and out_std < 1e-3
    assert sigma == pytest.approx(np.log(2.0) + 1e-4, rel=1e-4)


def test_bad_trunk_init_is_reported():
    cfg = model_config("tiny")
    cfg.trunk_init = "xavier"
    with pytest.raises(ValueError, match="model.trunk_init"):
        jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))


def test_configs_saved_before_the_release_switches_build_the_same_model():
    """A run's config.json from before the release keys: absent keys mean the old architecture."""
    from ml_collections import ConfigDict

    from speechvae_jax.models.discriminators import Discriminators

    cfg = model_config("tiny")
    old = cfg.to_dict()
    for section, keys in (("encoder", ("final_conv", "weight_norm")),
                          ("decoder", ("anti_alias", "weight_norm", "full_lengths"))):
        for k in keys:
            del old[section][k]
    del old["discriminators"]["weight_norm"], old["discriminators"]["cqt"]["front_end"]
    old = ConfigDict(old)
    audio = jnp.zeros((1, 4000))
    shapes = lambda c: jax.tree.map(lambda x: x.shape, jax.eval_shape(SpeechVAE(c).init, jax.random.key(0), audio))
    disc = lambda c: jax.tree.map(lambda x: x.shape, jax.eval_shape(Discriminators(c.discriminators).init,
                                                                    jax.random.key(0), audio))
    assert shapes(old) == shapes(cfg) and disc(old) == disc(cfg)
    x = jnp.asarray(_speechlike(4000))
    v = SpeechVAE(cfg).init(jax.random.key(0), x)
    np.testing.assert_array_equal(SpeechVAE(old).apply(v, x)[0], SpeechVAE(cfg).apply(v, x)[0])
