"""Parity of the paper preset with the release's PyTorch components (random weights, no download).

`reference.py` builds DAC's encoder (+ `proj_out`), BigVGAN's generator and discriminators and
auraloss's MR-STFT loss in a subprocess whose path holds the reference packages; their state dicts
go through `models.torch_import` into our trees, and the outputs must agree. Each comparison is
also run with one converted weight changed slightly, which must fail it.

The reference packages live outside the project venv (`launch/setup.sh` installs them with
`pip install --no-deps --target $VENV/ref-site ...`, docs/models.md; `SPEECHVAE_REF_SITE` overrides
the folder). Without them these tests fail with that instruction rather than pass unchecked.
"""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict

from speechvae_jax.bench import reference
from speechvae_jax.losses.spectral import multi_resolution_stft_loss
from speechvae_jax.models import torch_import
from speechvae_jax.models.discriminators import Discriminators
from speechvae_jax.models.vae import SpeechVAE
from speechvae_jax.presets.model import model_config

REF_SITE = reference.default_site()
pytestmark = pytest.mark.slow

# max |ours - reference| / max |reference| allowed (float32 through up to ~60 layers).
TOL = {"encoder": 1e-4, "decoder": 1e-4, "mpd": 1e-4, "cqt": 1e-3}


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    if not os.path.isdir(os.path.join(REF_SITE, "bigvgan")):
        pytest.fail(f"the reference packages are not installed in {REF_SITE}: run `bash launch/setup.sh` "
                    "(or set SPEECHVAE_REF_SITE)")
    out = tmp_path_factory.mktemp("release_reference")
    env = dict(os.environ, SPEECHVAE_REF_SITE=REF_SITE)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "reference.py"), str(out)],
                   check=True, env=env, capture_output=True)
    return lambda name: dict(np.load(os.path.join(out, f"{name}.npz")))


def _rel_err(ours, theirs) -> float:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


def _convert(state, pairs, template_tree):
    template = {k: v.shape for k, v in flatten_dict(template_tree, sep="/").items()}
    params, used, missing = torch_import.convert(state, pairs, template)
    unexpected = sorted(k for k in state if k not in used and not torch_import.is_buffer(k))
    assert not missing and not unexpected, (missing[:5], unexpected[:5])
    assert not torch_import.check_buffers(state, state)
    return params


def _perturbed(params, path):
    """A copy of flat params with one parameter (all its entries) changed by 5 %."""
    return {**params, path: params[path] * 1.05}


def _tree(flat):
    return unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in flat.items()})


def test_encoder_mean_and_scale_match_dac(ref):
    state, io = ref("encoder_state"), ref("encoder_io")
    cfg = model_config("paper")
    vae = SpeechVAE(cfg)
    shapes = jax.eval_shape(vae.init, jax.random.key(0), jnp.zeros((1, 4000)))["params"]
    assert int(io["num_params"]) == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["encoder"]))
    params = _convert(state, torch_import.encoder_pairs(cfg.encoder), shapes["encoder"])
    encode = jax.jit(lambda p, a: vae.apply({"params": {"encoder": p}}, a, method=vae.encode))
    mean, sigma = encode(_tree(params), io["audio"])
    assert _rel_err(mean, io["mean"]) < TOL["encoder"]
    assert _rel_err(sigma, io["sigma"]) < TOL["encoder"]
    bad, _ = encode(_tree(_perturbed(params, "blocks_1/ResidualUnit_0/Conv_0/gain")), io["audio"])
    assert _rel_err(bad, io["mean"]) > 10 * TOL["encoder"]


def test_decoder_waveform_matches_bigvgan(ref):
    state, io = ref("decoder_state"), ref("decoder_io")
    cfg = model_config("paper")
    vae = SpeechVAE(cfg)
    shapes = jax.eval_shape(vae.init, jax.random.key(0), jnp.zeros((1, 2000)))["params"]
    assert int(io["num_params"]) == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["decoder"]))
    params = _convert(state, torch_import.decoder_pairs(cfg.decoder), shapes["decoder"])
    decode = jax.jit(lambda p, z: vae.apply({"params": {"decoder": p}}, z, method=vae.decode))
    # BigVGAN's waveform is T * 400 + 96 samples long (odd-stride upsamplers); ours is cropped to T * 400.
    expected = io["audio"][:, : io["z"].shape[1] * cfg.hop]
    assert _rel_err(decode(_tree(params), io["z"]), expected) < TOL["decoder"]
    bad = decode(_tree(_perturbed(params, "AMPBlock_7/Conv_3/gain")), io["z"])
    assert _rel_err(bad, expected) > 10 * TOL["decoder"]


@pytest.mark.parametrize("family", ["mpd", "cqt"])
def test_discriminator_logits_and_feature_maps_match_bigvgan(ref, family):
    state, io = ref(f"{family}_state"), ref(f"{family}_io")
    cfg = model_config("paper").discriminators
    cfg.mpd.enabled, cfg.cqt.enabled = family == "mpd", family == "cqt"
    disc = Discriminators(cfg)
    audio = jnp.asarray(io["audio"])
    shapes = jax.eval_shape(disc.init, jax.random.key(0), audio)["params"]
    assert int(io["num_params"]) == sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    pairs = torch_import.mpd_pairs(cfg) if family == "mpd" else torch_import.cqt_pairs(cfg)
    params = _convert(state, pairs, shapes)
    run = jax.jit(lambda p, a: disc.apply({"params": p}, a))

    def worst(outs):  # the largest relative error over every logit and feature map
        errs = []
        for k, (logits, fmaps) in enumerate(outs):
            errs.append(_rel_err(np.asarray(logits).reshape(-1), io[f"logits_{k}"].reshape(-1)))
            errs += [_rel_err(fm, io[f"fmap_{k}_{i}"]) for i, fm in enumerate(fmaps)]
        return max(errs)

    assert worst(run(_tree(params), audio)) < TOL[family]
    wrong = "mpd_5/Conv_2/gain" if family == "mpd" else "cqt_1/Conv_9/gain"
    assert worst(run(_tree(_perturbed(params, wrong)), audio)) > 10 * TOL[family]


def test_mrstft_loss_matches_auraloss(ref):
    io = ref("mrstft_io")
    ours = float(multi_resolution_stft_loss(io["x"], io["y"]))
    assert abs(ours - float(io["loss"])) < 1e-5 * abs(float(io["loss"]))
    assert abs(float(multi_resolution_stft_loss(1.01 * io["x"], io["y"])) - float(io["loss"])) > 1e-3
