"""The VAE trainer on the engine end to end: resume equality, checkpoints without the teacher, config
errors, the teacher feature cache, paper scale. (The engine itself: tests/engine.)"""
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from speechvae_jax.engine import checkpoint, rundir
from speechvae_jax.engine import mesh as mesh_lib
from speechvae_jax.inference import load_for_inference
from speechvae_jax.models import vae
from speechvae_jax.presets.run import load_config_file
from speechvae_jax.teachers import EncoderConfig
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.teachers.store import save_teacher
from speechvae_jax.train import steps
from speechvae_jax.train.state import Modules
from speechvae_jax.train.task import FROZEN_SECTIONS, train_and_evaluate, validation_batches
from tests.train.test_steps import small_config, small_teacher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def loop_config(corpus, variant="none", num_steps=4):
    c = small_config(variant)
    c.data.source = corpus
    c.train.batch_size = 8
    c.train.num_steps = num_steps
    c.train.disc_start = 2           # steps 0-1 GAN-free, then alternating G / D
    c.train.log_every = 1
    c.evals.val.every = 2
    c.evals.val.batches = 1
    c.train.checkpoint_every = 2
    c.train.sample_every = 1000
    return c


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r for r in rows if "loss/total" in r or "loss/disc" in r}


def losses(rows):
    return {s: {k: v for k, v in r.items() if k.startswith("loss/")} for s, r in rows.items()}


@pytest.mark.slow
def test_resume_gives_identical_losses(tiny_corpus, tmp_path):
    straight = str(tmp_path / "straight")
    train_and_evaluate(loop_config(tiny_corpus, num_steps=4), straight)
    resumed = str(tmp_path / "resumed")
    train_and_evaluate(loop_config(tiny_corpus, num_steps=2), resumed)
    assert checkpoint.Checkpoints(resumed, read_only=True).latest_step() == 2
    train_and_evaluate(loop_config(tiny_corpus, num_steps=4), resumed)
    a, b = losses(read_metrics(straight)), losses(read_metrics(resumed))
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    assert "loss/disc" in a[4] and "loss/adv" in a[3]  # the GAN phase ran
    for s in a:
        for k in a[s]:
            np.testing.assert_allclose(a[s][k], b[s][k], rtol=1e-6, err_msg=f"step {s} {k}")
    # The EMA weights of both runs agree too, and the inference loader reads them.
    ma, mb = load_for_inference(straight), load_for_inference(resumed)
    assert ma.step == mb.step == 4 and ma.checkpoint_hash == mb.checkpoint_hash
    mean, sigma, fm = ma.encode(np.zeros((1, 16000), np.float32))
    assert mean.shape == (1, 40, 64) and fm.shape == (1, 40)
    assert ma.decode(mean).shape == (1, 16000)


@pytest.mark.slow
def test_aligned_run_checkpoints_without_teacher(tiny_corpus, tmp_path):
    teacher = small_teacher()
    tpath = str(tmp_path / "teacher")
    save_teacher(tpath, teacher.config, teacher.params, default_layer=2)
    c = loop_config(tiny_corpus, variant="joint_marginal", num_steps=2)
    c.teacher.path, c.teacher.layer = tpath, 2
    workdir = str(tmp_path / "run")
    train_and_evaluate(c, workdir)
    rows = read_metrics(workdir)
    assert {"align/mcos", "align/mdms", "weight/mcos", "weight/mdms"} <= set(rows[2])
    mngr = checkpoint.Checkpoints(workdir, read_only=True).mngr
    saved = mngr.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    assert set(saved) == {"step", "rng", "gen", "ema", "disc", "gen_opt", "disc_opt", "skipped", "skipped_run"}
    assert set(saved["gen"]) == {"vae", "proj"}
    # The teacher's params are not in the checkpoint: no leaf path mentions its modules.
    paths = " ".join(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(saved)[0])
    assert "pos_conv" not in paths and "feature_projection" not in paths


def test_validation_crops_are_never_speed_perturbed(tiny_corpus):
    mesh = mesh_lib.make_mesh((1, 1), jax.devices()[:1])
    c = loop_config(tiny_corpus)
    plain = validation_batches(c, mesh, 1)[0]
    c.data.speed_perturb = 6.0
    perturbed = validation_batches(c, mesh, 1)[0]
    np.testing.assert_array_equal(np.asarray(plain["audio"]), np.asarray(perturbed["audio"]))


def test_resume_refuses_changed_model_config():
    saved = {"model": {"latent_dim": 64}, "train": {"num_steps": 10}}
    assert not rundir.config_differences(saved, {"model": {"latent_dim": 64}, "train": {"num_steps": 99}},
                                          FROZEN_SECTIONS)
    assert rundir.config_differences(saved, {"model": {"latent_dim": 32}, "train": {"num_steps": 10}},
                                     FROZEN_SECTIONS) == ["model.latent_dim (64 -> 32)"]
    # A key added since the run was saved is not a difference (the run resumes with its value); a removed one is.
    newer = {"model": {"latent_dim": 64, "decoder": {"kind": "bigvgan"}}, "train": {"num_steps": 10}}
    assert not rundir.config_differences(saved, newer, FROZEN_SECTIONS)
    assert rundir.added_keys(saved, newer, FROZEN_SECTIONS) == ["model.decoder.kind"]
    assert rundir.config_differences(newer, saved, FROZEN_SECTIONS) == ["model.decoder.kind ('bigvgan' -> None)"]
    # ... unless the key names what such runs were built with (models/vae.py SAVED_BEFORE): a run of
    # the DAC encoder, saved before `model.encoder.kind` existed, is refused by an STFT-encoder config.
    before = {f"model.{k}": v for k, v in vae.SAVED_BEFORE.items()}
    stft = {"model": {"latent_dim": 64, "encoder": {"kind": "stft"}}, "train": {"num_steps": 10}}
    assert rundir.config_differences(saved, stft, FROZEN_SECTIONS, before) == ["model.encoder.kind ('dac' -> 'stft')"]
    dac = {"model": {"latent_dim": 64, "encoder": {"kind": "dac"}}, "train": {"num_steps": 10}}
    assert not rundir.config_differences(saved, dac, FROZEN_SECTIONS, before)
    assert not rundir.added_keys(saved, dac, FROZEN_SECTIONS, before)


def _cli(*args, timeout=120):
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
    return subprocess.run([sys.executable, "-m", "speechvae_jax", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unknown_config_key_fails_clearly(tmp_path):
    r = _cli("train", "--config", "configs/tiny.py:none", "--workdir", str(tmp_path),
             "--config.train.num_stepz=5")
    assert r.returncode != 0 and "num_stepz" in r.stderr


def test_wrong_config_type_fails_clearly(tmp_path):
    r = _cli("train", "--config", "configs/tiny.py:none", "--workdir", str(tmp_path),
             "--config.train.num_steps=many")
    assert r.returncode != 0 and "num_steps" in r.stderr


def test_unknown_variant_fails_clearly(tmp_path):
    r = _cli("train", "--config", "configs/tiny.py:time_axes", "--workdir", str(tmp_path))
    assert r.returncode != 0 and "time_axes" in r.stderr


def test_paper_scale_step_traces(tmp_path):
    """configs/paper.py: the whole generator + discriminator step traces with a WavLM-Large-shaped teacher."""
    c = load_config_file("paper", "joint_marginal")
    large = EncoderConfig(kind="wavlm", conv_dim=(512,) * 7, conv_bias=True, feat_extract_norm="layer",
                          do_stable_layer_norm=True, hidden_size=1024, num_hidden_layers=24,
                          num_attention_heads=16, intermediate_size=4096, do_normalize=True)
    t_params = jax.eval_shape(lambda: SSLEncoder(large).init(
        jax.random.PRNGKey(0), jnp.zeros((1, 16000)), None)["params"])

    class AbstractTeacher:  # the real module and config; params only as shapes
        hop, receptive_field = large.hop, large.receptive_field

        @staticmethod
        def apply_fn(params, audio, mask):
            return SSLEncoder(large).apply({"params": params}, audio, None)

    m = Modules(c, teacher_dim=1024)
    state = jax.eval_shape(lambda: m.init_state(jax.random.PRNGKey(0), c.data.crop_samples))
    count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
    assert count(state["gen"]["vae"]) == 73_845_120 + 12_954_050  # the PyTorch builds' encoder + decoder
    batch = {k: jax.ShapeDtypeStruct((2, c.data.crop_samples), jnp.float32) for k in ("audio", "mask")}
    for kind in ("generator+gan", "discriminator"):
        u = steps.make_update(m, AbstractTeacher(), kind)
        new, metrics = jax.eval_shape(lambda s, b, f: u.apply(s, *u.grads(s, b, f)), state, batch, t_params)
        assert jax.tree.structure(new) == jax.tree.structure(state)


@pytest.mark.slow
def test_training_from_the_teacher_feature_cache(tiny_corpus, tmp_path):
    """config.teacher.cache_dir: batches carry cached teacher frames of their crop; training runs."""
    from speechvae_jax.data import pipeline
    from speechvae_jax.teachers import load_teacher
    from speechvae_jax.teachers.cache import CachedTargets, build_cache

    teacher = small_teacher()
    tpath = str(tmp_path / "teacher")
    save_teacher(tpath, teacher.config, teacher.params, default_layer=2)
    cache_dir = build_cache(tpath, tiny_corpus, "train", str(tmp_path / "cache"), layers=[2])
    c = loop_config(tiny_corpus, variant="joint_marginal", num_steps=2)
    c.teacher.path, c.teacher.layer, c.teacher.cache_dir = tpath, 2, cache_dir
    # Batches carry the cached frames of their crop, one row per requested layer.
    feats = CachedTargets(cache_dir, load_teacher(tpath), [2])
    ds = pipeline.train_dataset(c.data, global_batch_size=8, seed=0, process_index=0,
                                process_count=1, features=feats)
    batch = next(iter(ds))
    assert batch["teacher"].shape[:2] == (8, 1) and batch["teacher"].shape[-1] == teacher.config.hidden_size
    workdir = str(tmp_path / "run")
    train_and_evaluate(c, workdir)
    rows = read_metrics(workdir)
    assert np.isfinite(rows[2]["align/mcos"]) and np.isfinite(rows[2]["align/mdms"])
    with pytest.raises(ValueError, match="not cached"):
        CachedTargets(cache_dir, load_teacher(tpath), [1])
