import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax.models.stft_encoder import STFTEncoder
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config


def _stft_config(**stft):
    cfg = model_config("tiny")
    cfg.encoder.kind = "stft"
    cfg.decoder.kind = "istft"
    cfg.decoder.istft.update(dim=16, intermediate=32, num_blocks=1)
    cfg.encoder.stft.update(stft)
    return cfg


@pytest.fixture(scope="module")
def small():
    """A narrow STFT-encoder VAE (fast to compile) and its params."""
    model = SpeechVAE(_stft_config(dim=32, intermediate=64, num_blocks=2))
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
    return model, params


@pytest.mark.parametrize("n", [400, 4000, 4001, 4399])
def test_latent_rate_and_shapes(small, n):
    model, params = small
    audio = 0.1 * jax.random.normal(jax.random.key(1), (2, n))
    mean, sigma = jax.jit(lambda a: model.apply({"params": params}, a, method="encode"))(audio)
    frames = -(-n // 400)
    assert mean.shape == sigma.shape == (2, frames, 64) and mean.dtype == jnp.float32
    assert np.all(np.asarray(sigma) > 0)
    enc = params["encoder"]
    # 401 log magnitudes -> 32; one ConvNeXt block at 80 frames/s, the k=4 stride-2 conv, one at 40 frames/s
    assert enc["embed"]["kernel"].shape == (401, 32)
    assert enc["down"]["kernel"].shape == (4, 32, 32)
    assert enc["last"]["kernel"].shape == (32, 128)
    assert sorted(k for k in enc if k.startswith("blocks")) == ["blocks_fast_0", "blocks_slow_0"]


def test_latent_frame_sees_only_its_neighbourhood(small):
    """A click in latent frame 10's span changes frames near 10 and leaves distant frames untouched."""
    model, params = small
    quiet = 0.01 * jax.random.normal(jax.random.key(2), (1, 40 * 400))
    click = quiet.at[0, 10 * 400 + 200].add(0.5)
    enc = jax.jit(lambda a: model.apply({"params": params}, a, method="encode")[0])
    diff = np.abs(np.asarray(enc(click) - enc(quiet)))[0].max(axis=-1)
    assert diff[10] > 0
    assert int(np.argmax(diff)) in (9, 10, 11)
    # receptive field: 2 x (kernel 7) at 80 frames/s, the stride conv, 1 x (kernel 7) at 40 frames/s
    assert np.all(diff[:3] == 0) and np.all(diff[-3:] == 0)


def test_gradients_reach_every_encoder_parameter(small):
    model, params = small
    audio = 0.1 * jax.random.normal(jax.random.key(3), (2, 4000))

    def loss(p):
        recon, mean, sigma = model.apply({"params": p}, audio)
        return jnp.mean((recon - audio) ** 2) + jnp.mean(mean ** 2) + jnp.mean(sigma)

    grads = jax.jit(jax.grad(loss))(params)["encoder"]
    norms = {jax.tree_util.keystr(k): float(jnp.linalg.norm(g)) for k, g in jax.tree_util.tree_leaves_with_path(grads)}
    assert all(np.isfinite(v) and v > 0 for v in norms.values()), norms


def test_initial_posterior_scale_follows_the_scale_bias():
    enc = STFTEncoder(hop=400, dim=8, intermediate=16, num_blocks=2, downsample=2, n_fft=800, latent_dim=4,
                      scale_bias_init=-3.0)
    params = enc.init(jax.random.key(0), jnp.zeros((1, 8, 8)), method="head")["params"]["last"]
    assert np.allclose(params["bias"], [0, 0, 0, 0, -3, -3, -3, -3])


@pytest.mark.parametrize("update,key", [({"downsample": 3}, "downsample"), ({"n_fft": 256}, "n_fft")])
def test_bad_stft_settings_are_reported(update, key):
    model = SpeechVAE(_stft_config(**update))
    with pytest.raises(ValueError, match=f"model.encoder.stft.{key}"):
        model.init(jax.random.key(0), jnp.zeros((1, 800)))


def test_unknown_encoder_kind_is_reported():
    cfg = _stft_config()
    cfg.encoder.kind = "wavenet"
    with pytest.raises(ValueError, match="model.encoder.kind"):
        SpeechVAE(cfg).init(jax.random.key(0), jnp.zeros((1, 800)))
