"""Feature cache: round trip against the teacher, idempotent rebuild, identity refusal, crops."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechvae_jax import fileio
from speechvae_jax.teachers import EncoderConfig, load_teacher
from speechvae_jax.teachers.cache import FeatureCache, build_cache, cache_identity, crop_features
from speechvae_jax.teachers.encoder import SSLEncoder
from speechvae_jax.teachers.store import save_teacher

CFG = EncoderConfig(kind="hubert", conv_dim=(8, 8, 16), conv_kernel=(10, 8, 4), conv_stride=(5, 8, 8),
                    conv_bias=True, feat_extract_norm="layer", hidden_size=16, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=24, num_conv_pos_embeddings=8,
                    num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, do_normalize=True)


def _save(path, seed):
    params = SSLEncoder(CFG).init(jax.random.PRNGKey(seed), jnp.zeros((1, 1000)))["params"]
    save_teacher(str(path), CFG, params, default_layer=1)
    return load_teacher(str(path))


@pytest.fixture(scope="module")
def built(tiny_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    teacher = _save(root / "teacher", 0)
    out = build_cache(str(root / "teacher"), tiny_corpus, "test", str(root / "cache"), layers=[1, 2])
    return root, teacher, out


def test_round_trip_matches_teacher(built, tiny_corpus):
    from speechvae_jax.data import sources
    root, teacher, out = built
    cache = FeatureCache(out, expect_identity=cache_identity(teacher, [1, 2]))
    source = sources.open_source(tiny_corpus, "test")
    assert len(cache) == len(source) > 0
    for i in range(min(3, len(source))):
        rec = source[i]
        feats = cache.lookup([rec["id"]])[0]
        hidden = teacher.hidden_states(rec["audio"][None])  # unpadded, alone
        assert feats.shape == (2, CFG.num_frames(rec["audio"].size), CFG.hidden_size)
        for k, layer in enumerate([1, 2]):
            np.testing.assert_allclose(feats[k], np.asarray(hidden[layer][0]), atol=1e-4)
    with pytest.raises(KeyError, match="no-such-id"):
        cache.lookup(["no-such-id"])


def test_identity_mismatch_is_refused(built, tiny_corpus):
    root, teacher, out = built
    other = _save(root / "other", 1)
    with pytest.raises(ValueError, match="teacher: cache has"):
        FeatureCache(out, expect_identity=cache_identity(other, [1, 2]))
    with pytest.raises(ValueError, match="layers: cache has"):
        FeatureCache(out, expect_identity=cache_identity(teacher, 2))
    with pytest.raises(ValueError, match="does not match"):
        build_cache(str(root / "other"), tiny_corpus, "test", out, layers=[1, 2])
    with pytest.raises(ValueError, match="not corpus"):
        build_cache(str(root / "teacher"), tiny_corpus.replace("corpus:", "corpus:/elsewhere"), "test", out,
                    layers=[1, 2])


def test_rebuild_is_idempotent_and_incomplete_is_rejected(built, tiny_corpus, tmp_path):
    root, teacher, out = built
    before = (root / "cache" / "features.array_record").stat().st_mtime_ns
    build_cache(str(root / "teacher"), tiny_corpus, "test", out, layers=[1, 2])
    assert (root / "cache" / "features.array_record").stat().st_mtime_ns == before
    meta = json.loads((root / "cache" / "cache.json").read_text())
    (tmp_path / "cache.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(ValueError, match="incomplete"):
        FeatureCache(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cache.json"):
        FeatureCache(str(tmp_path / "missing"))


def test_crop_features_follows_the_audio_crop():
    full = np.arange(2 * 10 * 3, dtype=np.float32).reshape(2, 10, 3)  # K=2 layers, T=10 frames
    crop, mask = crop_features(full, sample_offset=640, num_samples=1360)  # 4 frames from frame 2
    assert crop.shape == (2, 4, 3) and mask.all()
    np.testing.assert_array_equal(crop, full[:, 2:6])
    crop, mask = crop_features(full, sample_offset=8 * 320, num_samples=1360)  # runs past the end
    np.testing.assert_array_equal(mask, [True, True, False, False])
    np.testing.assert_array_equal(crop[:, :2], full[:, 8:10])
    np.testing.assert_array_equal(crop[:, 2:], 0.0)
    crop, mask = crop_features(full, sample_offset=330, num_samples=300)  # shorter than the field
    assert crop.shape == (2, 0, 3) and mask.shape == (0,)


def test_a_cache_in_gs_equals_the_local_one(built, tiny_corpus, gcs_bucket, tmp_path, monkeypatch):
    """Built into gs:// (a local GCS server): the shard is uploaded whole, the reader's features
    (from its cached local copy) equal the local cache's, a re-run keeps the complete cache."""
    monkeypatch.setenv("SPEECHVAE_CACHE", str(tmp_path / "copies"))
    root, teacher, out = built
    remote = f"{gcs_bucket}/teacher_cache/test"
    assert build_cache(str(root / "teacher"), tiny_corpus, "test", remote, layers=[1, 2]) == remote
    local, cloud = FeatureCache(out), FeatureCache(remote, expect_identity=cache_identity(teacher, [1, 2]))
    assert cloud.ids == local.ids
    for a, b in zip(local.lookup(local.ids), cloud.lookup(local.ids)):
        np.testing.assert_array_equal(a, b)
    built_at = fileio.as_path(f"{remote}/features.array_record").stat().mtime
    assert built_at is not None
    build_cache(str(root / "teacher"), tiny_corpus, "test", remote, layers=[1, 2])
    assert fileio.as_path(f"{remote}/features.array_record").stat().mtime == built_at
