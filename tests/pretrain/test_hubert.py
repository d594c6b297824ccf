"""The in-house teacher's pre-training on the engine: exact resume, idempotent re-runs, a loadable
teacher; MFCC targets on the teacher grid; span masks."""
import json
import os

import numpy as np
import pytest

from speechvae_jax.presets.run import load_config_file
from speechvae_jax.pretrain.hubert import pretrain
from speechvae_jax.pretrain.labels import assign_clusters, mfcc_features, span_mask
from speechvae_jax.teachers import load_teacher


def _tiny_config(source, steps):
    c = load_config_file("teacher_tiny")
    c.data.source = source
    c.data.crop_samples = 4000
    c.evals.val.batches = 1
    c.evals.val.every = 2
    c.model.conv_dim = [8, 8, 8, 8, 8, 16, 16]
    c.model.update(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                   num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    c.labels.num_clusters = 8
    c.labels.kmeans_frames = 2000
    c.train.update(batch_size=8, num_steps=steps, warmup_steps=1, log_every=1, checkpoint_every=2)
    c.teacher_layer = 1
    return c


def _losses(work):
    rows = [json.loads(line) for line in open(os.path.join(work, "metrics.jsonl"))]
    return {r["step"]: (r["loss"], r["masked_accuracy"]) for r in rows if "loss" in r}


@pytest.mark.slow
def test_pretrain_resumes_exactly_and_writes_a_loadable_teacher(tiny_corpus, tmp_path):
    straight = str(tmp_path / "straight")
    pretrain(_tiny_config(tiny_corpus, 4), straight)
    work = str(tmp_path / "work")
    first = pretrain(_tiny_config(tiny_corpus, 2), work)  # a run of 2 steps, as if killed after step 2
    assert first.step == 2
    os.remove(os.path.join(work, "teacher", "config.json"))  # its export is incomplete
    resumed = pretrain(_tiny_config(tiny_corpus, 4), work)  # continues from the step-2 checkpoint
    assert resumed.step == 4
    a, b = _losses(straight), _losses(work)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:  # same data order, masks and updates: the same losses
        np.testing.assert_allclose(a[step], b[step], rtol=1e-6, err_msg=f"step {step}")
    out = os.path.join(work, "teacher")
    teacher = load_teacher(out)
    assert teacher.default_layer == 1 and teacher.meta["pretrain"]["steps"] == 4
    assert 0.0 <= teacher.meta["pretrain"]["valid_masked_accuracy"] <= 1.0
    assert "masked_spec_embed" not in teacher.params
    hs = teacher.hidden_states(np.zeros((1, 3200), np.float32) + 0.01)
    assert len(hs) == 3 and hs[1].shape == (1, 9, 16) and np.isfinite(np.asarray(hs[-1])).all()
    mtime = os.path.getmtime(os.path.join(out, "params.safetensors"))
    pretrain(_tiny_config(tiny_corpus, 4), work)  # complete: skipped
    assert os.path.getmtime(os.path.join(out, "params.safetensors")) == mtime
    with pytest.raises(ValueError, match="different config"):
        pretrain(_tiny_config(tiny_corpus, 5), work)


def test_mfcc_frames_follow_the_teacher_grid():
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats = mfcc_features(audio)
    assert feats.shape == ((16000 - 400) // 320 + 1, 39)
    assert mfcc_features(audio[:399]).shape == (0, 39)
    km = {"mean": np.zeros(39, np.float32), "std": np.ones(39, np.float32), "centroids": feats[[3, 7]]}
    ids = assign_clusters(feats, km)
    assert ids[3] == 0 and ids[7] == 1


def test_span_mask():
    rng = np.random.default_rng(0)
    valid = np.zeros((3, 50), bool)
    valid[0], valid[1, :30], valid[2, :5] = True, True, True
    m = span_mask(rng, valid, prob=0.65, length=10)
    assert not (m & ~valid).any()  # only valid frames are masked
    assert m[0].sum() >= 10 and m[1].sum() >= 10 and not m[2].any()
