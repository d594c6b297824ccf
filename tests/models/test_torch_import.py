import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from speechvae_jax.models import torch_import
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config
from tests.release_layout import torch_layout


def _tiny_release():
    cfg = model_config("tiny")
    cfg.encoder.final_conv = cfg.encoder.weight_norm = cfg.decoder.weight_norm = True
    return cfg


def test_encoder_and_decoder_round_trip_through_the_release_layout():
    cfg = _tiny_release()
    params = jax.jit(SpeechVAE(cfg).init)(jax.random.key(0), jnp.zeros((1, 800)))["params"]
    for part, pairs in (("encoder", torch_import.encoder_pairs(cfg.encoder)),
                        ("decoder", torch_import.decoder_pairs(cfg.decoder))):
        pairs = list(pairs)
        ours = {k: np.asarray(v) for k, v in flatten_dict(params[part], sep="/").items()}
        state = torch_layout(ours, pairs)
        state["x.upsample.filter"] = np.zeros(12)
        template = {k: v.shape for k, v in ours.items()}
        out, used, missing = torch_import.convert({f"autoencoder.{part}.{k}": v for k, v in state.items()}, pairs,
                                                  template, prefix=f"autoencoder.{part}.")
        assert not missing and len(used) == len(state) - 1
        for k, v in ours.items():
            np.testing.assert_array_equal(out[k], v, err_msg=k)
    assert state["conv_pre.weight_v"].shape == (128, 64, 7)        # torch Conv1d [O, I, K]
    assert state["ups.0.0.weight_v"].shape == (128, 64, 10)         # ConvTranspose1d [I, O, K]
    assert state["ups.0.0.weight_g"].shape == (128, 1, 1)           # weight_norm dim 0 = input channels


def test_missing_keys_plain_weights_and_shape_errors_are_reported():
    cfg = _tiny_release()
    shapes = jax.eval_shape(SpeechVAE(cfg).init, jax.random.key(0), jnp.zeros((1, 800)))["params"]["encoder"]
    template = {k: v.shape for k, v in flatten_dict(shapes, sep="/").items()}
    w = np.ones((8, 1, 7), np.float32)
    out, used, missing = torch_import.convert({"encoder.block.0.weight": w}, torch_import.encoder_pairs(cfg.encoder),
                                              template)
    assert used == {"encoder.block.0.weight"} and "last/kernel" in missing and "conv_in/bias" in missing
    np.testing.assert_allclose(out["conv_in/gain"], np.sqrt(7.0))  # a plain weight: g = ||w||
    with pytest.raises(ValueError, match="does not fit conv_in/kernel"):
        torch_import.convert({"encoder.block.0.weight": np.ones((8, 1, 5))}, torch_import.encoder_pairs(cfg.encoder),
                             template)


def test_locate_parts_of_a_lightning_checkpoint_and_a_bare_state_dict():
    keys = ["autoencoder.encoder.encoder.block.0.weight_v", "autoencoder.encoder.proj_out.weight",
            "autoencoder.decoder.conv_pre.weight_v", "autoencoder_ema.ema_model.encoder.encoder.block.0.weight_v",
            "autoencoder_ema.online_model.encoder.encoder.block.0.weight_v",
            "autoencoder_ema.ema_model.decoder.conv_pre.weight_v",
            "discriminator.mpd.discriminators.0.convs.0.weight_v",
            "discriminator.cqt.discriminators.0.conv_pres.0.weight",
            "discriminator.cqt.discriminators.0.convs.0.weight"]
    assert torch_import.locate_parts(keys) == {
        "encoder": "autoencoder.encoder.", "decoder": "autoencoder.decoder.",
        "ema_encoder": "autoencoder_ema.ema_model.encoder.", "ema_decoder": "autoencoder_ema.ema_model.decoder.",
        "mpd": "discriminator.mpd.", "cqt": "discriminator.cqt."}
    assert torch_import.locate_parts(["encoder.encoder.block.0.weight_g", "encoder.encoder.block.0.weight_v",
                                      "decoder.conv_pre.weight"]) == {"encoder": "encoder.", "decoder": "decoder."}
