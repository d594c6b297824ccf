import json
import os

import jax
import numpy as np
import pytest
import torch
from flax.traverse_util import flatten_dict

from speechvae_jax.inference import load_for_inference
from speechvae_jax.models import torch_import
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.train.release_import import REPORT_FILE, convert_release
from speechvae_jax.train.state import Modules
from tests.release_layout import release_config, torch_layout


def _flat(tree):
    return {k: np.asarray(v) for k, v in flatten_dict(tree, sep="/").items()}


@pytest.fixture(scope="module")
def release_run(tmp_path_factory):
    """A Lightning-style checkpoint of a tiny release-layout model (online, EMA, MPD; no CQT), converted."""
    config = load_config_file("tiny", "none")
    config.model = release_config("tiny")
    config.data.crop_samples = 4000
    m = Modules(config, teacher_dim=None)
    src = jax.jit(lambda r: m.init_state(r, 4000))(jax.random.PRNGKey(3))
    ema = jax.tree.map(lambda x: x + 0.01, src["gen"]["vae"])
    sd = {}
    for prefix, vae in (("autoencoder.", src["gen"]["vae"]), ("autoencoder_ema.ema_model.", ema)):
        sd.update({f"{prefix}encoder.{k}": v for k, v in torch_layout(
            _flat(vae["encoder"]), torch_import.encoder_pairs(config.model.encoder)).items()})
        sd.update({f"{prefix}decoder.{k}": v for k, v in torch_layout(
            _flat(vae["decoder"]), torch_import.decoder_pairs(config.model.decoder)).items()})
    mpd = {k: v for k, v in src["disc"].items() if k.startswith("mpd")}
    sd.update({f"discriminator.mpd.{k}": v for k, v in torch_layout(
        _flat(mpd), torch_import.mpd_pairs(config.model.discriminators)).items()})
    sd["autoencoder_ema.step"] = np.array(7.0)
    sd["teacher.encoder.weight"] = np.zeros(3)
    tmp = tmp_path_factory.mktemp("release")
    ckpt = str(tmp / "last.ckpt")
    torch.save({"state_dict": {k: torch.from_numpy(np.array(v, np.float32)) for k, v in sd.items()},
                "global_step": 7}, ckpt)
    out = str(tmp / "run")
    return convert_release(ckpt, out, config), out, src, ema


def test_release_checkpoint_becomes_a_run_folder_with_the_ema_weights(release_run):
    report, out, src, ema = release_run
    assert report["parts"] == {"encoder": "autoencoder.encoder.", "decoder": "autoencoder.decoder.",
                               "ema_encoder": "autoencoder_ema.ema_model.encoder.",
                               "ema_decoder": "autoencoder_ema.ema_model.decoder.", "mpd": "discriminator.mpd."}
    assert report["unexpected"] == ["autoencoder_ema.step", "teacher.encoder.weight"]
    assert report["fresh_discriminators"] == ["cqt_0", "cqt_1", "cqt_2"]
    assert json.load(open(os.path.join(out, REPORT_FILE)))["used"] == report["used"]
    model = load_for_inference(out)
    for k, v in _flat(ema).items():
        np.testing.assert_allclose(_flat(model.params)[k], v, rtol=1e-6, err_msg=k)
    z = np.zeros((1, 3, 64), np.float32)
    assert model.decode(z).shape == (1, 1200)


def test_a_checkpoint_without_a_decoder_is_refused(tmp_path):
    ckpt = str(tmp_path / "enc.pt")
    torch.save({"encoder.encoder.block.0.weight": torch.zeros(8, 1, 7)}, ckpt)
    with pytest.raises(ValueError, match="no decoder found"):
        convert_release(ckpt, str(tmp_path / "run"))
