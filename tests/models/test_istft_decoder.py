import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from speechvae_jax.dsp.spectral import istft
from speechvae_jax.losses.spectral import multi_resolution_stft_loss
from speechvae_jax.models.istft_decoder import ZERO_BINS, ConvNeXtBlock, ISTFTDecoder
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config


def _istft_config(**istft):
    cfg = model_config("tiny")
    cfg.decoder.kind = "istft"
    cfg.decoder.istft.update(istft)
    return cfg


@pytest.fixture(scope="module")
def small():
    """A narrow iSTFT-decoder VAE (fast to compile) and its params."""
    model = SpeechVAE(_istft_config(dim=32, intermediate=64, num_blocks=2))
    params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
    return model, params


def test_shapes_params_and_range(small):
    model, params = small
    z = jax.random.normal(jax.random.key(1), (2, 10, 64))
    audio = jax.jit(lambda z: model.apply({"params": params}, z, method="decode"))(z)
    assert audio.shape == (2, 4000) and audio.dtype == jnp.float32
    assert np.all(np.isfinite(audio)) and float(jnp.abs(audio).max()) < 1.0
    dec = params["decoder"]
    assert sorted(k for k in dec if not k.startswith(("ConvNeXt", "LayerNorm"))) == ["embed", "head", "upsample"]
    assert sum(k.startswith("ConvNeXtBlock") for k in dec) == 2
    # STFT hop 400 / 2 = 200, n_fft 800: 401 bins, the lowest two held at zero -> 399 magnitudes + phases.
    assert dec["head"]["kernel"].shape == (32, 2 * (401 - ZERO_BINS))
    assert dec["upsample"]["kernel"].shape == (4, 32, 32)


def test_output_has_no_dc_offset(small):
    model, params = small
    z = jax.random.normal(jax.random.key(2), (1, 40, 64))
    audio = np.asarray(jax.jit(lambda z: model.apply({"params": params}, z, method="decode"))(z))[0]
    inner = audio[800:-800]  # away from the edges, where the window sum is not constant
    assert abs(inner.mean()) < 3e-3 * inner.std(), (inner.mean(), inner.std())


def test_head_is_one_istft_of_the_predicted_spectrum():
    """With the trunk replaced by a known spectrum, the decoder output is tanh(istft(spectrum))."""
    dec = ISTFTDecoder(hop=400, dim=8, intermediate=16, num_blocks=1, upsample=4, n_fft=400)
    z = jax.random.normal(jax.random.key(0), (1, 6, 64))
    params = dec.init(jax.random.key(1), z)["params"]
    out, state = dec.apply({"params": params}, z, capture_intermediates=lambda m, _: m.name == "head",
                           mutable=["intermediates"])
    head = np.asarray(state["intermediates"]["head"]["__call__"][0])
    bins = 201 - ZERO_BINS
    assert head.shape == (1, 24, 2 * bins)
    spec = np.exp(np.minimum(head[..., :bins], np.log(100.0))) * np.exp(1j * head[..., bins:])
    spec = np.pad(spec, ((0, 0), (0, 0), (ZERO_BINS, 0)))
    np.testing.assert_allclose(out, np.tanh(np.asarray(istft(spec, 400, 100, length=2400))), atol=1e-5)


def test_convnext_block_starts_near_identity_and_keeps_shape():
    x = jax.random.normal(jax.random.key(0), (2, 12, 16))
    block = ConvNeXtBlock(intermediate=32, layer_scale=1e-3)
    params = block.init(jax.random.key(1), x)
    y = block.apply(params, x)
    assert y.shape == x.shape
    assert float(jnp.abs(y - x).max()) < 0.05 * float(jnp.abs(x).max())
    assert params["params"]["dwconv"]["kernel"].shape == (7, 1, 16)  # depthwise


@pytest.mark.parametrize("change,match", [
    ({"upsample": 3}, "upsample=3 must divide"),
    ({"n_fft": 300}, "n_fft=300 must be at least twice"),
])
def test_bad_istft_settings_are_reported(change, match):
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(SpeechVAE(_istft_config(**change)).init, jax.random.key(0), jnp.zeros((1, 800)))


def test_unknown_decoder_kind_is_reported():
    cfg = model_config("tiny")
    cfg.decoder.kind = "wavenet"
    with pytest.raises(ValueError, match="decoder.kind"):
        jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))


def test_config_switch_picks_the_decoder():
    def decoder_params(kind):
        cfg = model_config("tiny")
        cfg.decoder.kind = kind
        return jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))["params"]["decoder"]

    assert "head" in decoder_params("istft") and "head" not in decoder_params("bigvgan")
    assert any(k.startswith("AMPBlock") for k in decoder_params("bigvgan"))


def test_tone_is_learned_with_gradients_to_every_parameter(small):
    """Adam steps on the decoder and a free latent fit a 200 Hz tone: the MR-STFT loss drops."""
    model, params = small
    t = np.arange(4000) / 16000.0
    target = jnp.asarray(0.3 * np.sin(2 * np.pi * 200 * t)[None], jnp.float32)
    z0 = 0.1 * jax.random.normal(jax.random.key(3), (1, 10, 64))

    def loss(p):
        y = model.apply({"params": p["vae"]}, p["z"], method="decode")
        return multi_resolution_stft_loss(y, target, fft_sizes=(512, 256, 128), perceptual_weighting=False)

    tree = {"vae": params, "z": z0}
    grad_fn = jax.jit(jax.value_and_grad(loss))
    l0, g = grad_fn(tree)
    leaves = jax.tree.leaves(g["vae"]["decoder"])
    assert all(np.all(np.isfinite(x)) for x in leaves)
    assert all(float(jnp.abs(x).sum()) > 0 for x in leaves)
    opt = optax.adam(3e-3)
    state = opt.init(tree)
    for _ in range(30):
        updates, state = opt.update(g, state, tree)
        tree = optax.apply_updates(tree, updates)
        loss_now, g = grad_fn(tree)
    assert float(loss_now) < 0.75 * float(l0), (float(l0), float(loss_now))
