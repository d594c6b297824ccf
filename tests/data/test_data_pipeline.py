"""Grain pipelines: crops and masks, iterator save/restore, process sharding, utterance batches."""
import json

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.data import pipeline, sources


@pytest.fixture()
def labelled_folder(tmp_path):
    """12 constant-valued clips (value k/100 identifies clip k); clip 11 is shorter than a crop."""
    for k in range(12):
        n = 1200 if k == 11 else 3000 + 500 * k
        sf.write(tmp_path / f"clip{k:02d}.wav", np.full(n, (k + 1) / 100, np.float32), 16000,
                 subtype="FLOAT")
    cfg = pipeline.default_data_config()
    cfg.source, cfg.train_split = f"folder:{tmp_path}", "all"
    cfg.crop_samples, cfg.normalize, cfg.min_samples = 2000, "none", 100
    return cfg


def _labels(batch) -> list[int]:
    return [int(round(a[0] * 100)) - 1 for a in batch["audio"]]


def test_crop_long_and_short():
    rng = np.random.default_rng(0)
    x = np.arange(100, dtype=np.float32)
    a, m = pipeline.crop(x, 30, rng)
    assert a.shape == m.shape == (30,) and m.min() == 1.0
    assert np.all(np.diff(a) == 1.0) and 0 <= a[0] <= 70
    a, m = pipeline.crop(x[:10], 30, rng)
    np.testing.assert_array_equal(a[:10], x[:10])
    assert a[10:].max() == 0 and m.sum() == 10 and m[:10].min() == 1.0


@pytest.mark.parametrize("seed", [0, 3, 4])
def test_speed_crop_moves_the_pitch_by_the_drawn_factor(seed):
    sr, f0 = 16000, 440.0
    x = np.sin(2 * np.pi * f0 * np.arange(3 * sr) / sr).astype(np.float32)
    a, m = pipeline.speed_crop(x, 8000, np.random.default_rng(seed), 4.0)
    r = 2.0 ** (np.random.default_rng(seed).uniform(-4.0, 4.0) / 12.0)  # the first draw is the factor
    assert a.shape == m.shape == (8000,) and m.min() == 1.0 and abs(r - 1) > 0.02
    peak = np.argmax(np.abs(np.fft.rfft(a * np.hanning(8000)))) * sr / 8000
    assert abs(peak - f0 * r) <= 4.0, (peak, f0 * r)


def test_speed_crop_of_a_short_clip_masks_the_resampled_length():
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    a, m = pipeline.speed_crop(x, 8000, np.random.default_rng(5), 6.0)
    r = 2.0 ** (np.random.default_rng(5).uniform(-6.0, 6.0) / 12.0)
    n = int(m.sum())
    assert abs(n - 3000 / r) <= 2 and m[:n].min() == 1.0 and np.all(a[n:] == 0)


def test_speed_perturbed_batches_are_seeded_and_refuse_cached_targets(labelled_folder):
    labelled_folder.speed_perturb = 3.0
    first = [next(iter(pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=0,
                                              process_index=0, process_count=1))) for _ in range(2)]
    np.testing.assert_array_equal(first[0]["audio"], first[1]["audio"])
    np.testing.assert_array_equal(first[0]["mask"], first[1]["mask"])
    with pytest.raises(ValueError, match="speed_perturb"):
        pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=0, process_index=0,
                               process_count=1, features=object())
    labelled_folder.speed_perturb = 13.0
    with pytest.raises(ValueError, match="speed_perturb"):
        pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=0, process_index=0,
                               process_count=1)


def test_default_config_has_the_contract_keys():
    c = pipeline.default_data_config()
    for key in ("source", "train_split", "crop_samples", "sample_rate", "num_workers", "normalize"):
        assert key in c
    assert c.sample_rate == 16000 and c.normalize in ("peak", "none")


def test_train_batches_shapes_masks_and_epoch_coverage(labelled_folder):
    ds = pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=0, process_index=0,
                                process_count=1)
    it = iter(ds)
    seen = []
    for _ in range(3):  # one epoch: 12 clips
        b = next(it)
        assert b["audio"].shape == b["mask"].shape == (4, 2000)
        assert b["audio"].dtype == np.float32
        for lab, a, m in zip(_labels(b), b["audio"], b["mask"]):
            seen.append(lab)
            if lab == 11:
                assert m.sum() == 1200 and np.all(a[1200:] == 0)
            else:
                assert m.min() == 1.0
    assert sorted(seen) == list(range(12))
    second = sorted(lab for _ in range(3) for lab in _labels(next(it)))
    assert second == list(range(12))


def test_iterator_state_restores_exact_next_batches(labelled_folder):
    ds = pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=3, process_index=0,
                                process_count=1)
    it = iter(ds)
    for _ in range(5):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(4)]
    it2 = iter(pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=3,
                                      process_index=0, process_count=1))
    it2.set_state(state)
    for want in expected:
        got = next(it2)
        np.testing.assert_array_equal(got["audio"], want["audio"])
        np.testing.assert_array_equal(got["mask"], want["mask"])


def test_seed_changes_order(labelled_folder):
    def first(seed):
        it = iter(pipeline.train_dataset(labelled_folder, global_batch_size=4, seed=seed,
                                         process_index=0, process_count=1))
        return [lab for _ in range(3) for lab in _labels(next(it))]
    assert first(0) == first(0) and first(0) != first(1)


def test_per_process_shards_are_disjoint_and_complete(labelled_folder):
    per_process = []
    for pid in range(3):
        it = iter(pipeline.train_dataset(labelled_folder, global_batch_size=6, seed=0,
                                         process_index=pid, process_count=3))
        b = next(it)
        assert b["audio"].shape == (2, 2000)
        labs = _labels(b) + _labels(next(it))  # one epoch of this process's 4 clips
        assert len(set(labs)) == 4
        per_process.append(set(labs))
    assert set.union(*per_process) == set(range(12))
    assert sum(len(s) for s in per_process) == 12
    with pytest.raises(ValueError, match="divisible"):
        pipeline.train_dataset(labelled_folder, global_batch_size=5, seed=0, process_index=0,
                               process_count=2)


def test_process_batches_put_together_are_the_one_process_batches(labelled_folder, tmp_path):
    """Crop for crop: process i's batch is rows [i*b, (i+1)*b) of the one-process global batch."""
    for k in range(12):  # ramps, so a crop's start shows in its samples
        n = 1200 if k == 11 else 3000 + 500 * k
        sf.write(tmp_path / f"clip{k:02d}.wav", (k + 1) / 100 + np.arange(n, dtype=np.float32) * 1e-5, 16000,
                 subtype="FLOAT")
    one = iter(pipeline.train_dataset(labelled_folder, global_batch_size=6, seed=2, process_index=0,
                                      process_count=1))
    three = [iter(pipeline.train_dataset(labelled_folder, global_batch_size=6, seed=2, process_index=pid,
                                         process_count=3)) for pid in range(3)]
    for _ in range(5):  # past an epoch boundary (12 clips = 2 global batches)
        want = next(one)
        parts = [next(it) for it in three]
        for key in ("audio", "mask"):
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), want[key])


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_and_restore(tiny_corpus):
    cfg = pipeline.default_data_config()
    cfg.source, cfg.crop_samples = tiny_corpus, 4000
    kw = dict(global_batch_size=2, seed=0, process_index=0, process_count=1)
    it0 = iter(pipeline.train_dataset(cfg, **kw))
    ref = [next(it0)["audio"] for _ in range(6)]
    cfg.num_workers = 2
    it = iter(pipeline.train_dataset(cfg, **kw))
    got = [next(it)["audio"] for _ in range(3)]
    state = json.loads(json.dumps(it.get_state()))
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    it2 = iter(pipeline.train_dataset(cfg, **kw))
    it2.set_state(state)
    for b in ref[3:]:
        np.testing.assert_array_equal(next(it2)["audio"], b)


def test_utterance_batches_pad_to_buckets_and_shard(tiny_corpus):
    src = sources.open_source(tiny_corpus, "test")
    lengths = {src[i]["id"]: src[i]["audio"].size for i in range(len(src))}
    all_ids = []
    for pid in range(2):
        for b in pipeline.utterance_batches(src, batch_size=3, bucket_samples=8000,
                                            process_index=pid, process_count=2):
            n, length = b["audio"].shape
            assert n == len(b["ids"]) == len(b["records"]) <= 3 and length % 8000 == 0
            for row, uid, rec, m in zip(b["audio"], b["ids"], b["records"], b["mask"]):
                assert rec["id"] == uid and m.sum() == lengths[uid]
                assert length - lengths[uid] < 8000
                np.testing.assert_array_equal(row[: lengths[uid]], rec["audio"])
            all_ids += b["ids"]
    assert sorted(all_ids) == sorted(lengths)


@pytest.mark.slow
def test_a_source_of_only_bad_files_stops_with_an_error(tmp_path):
    for k in range(3):
        (tmp_path / f"bad{k}.wav").write_bytes(b"not audio at all")
    cfg = pipeline.default_data_config()
    cfg.source, cfg.train_split, cfg.crop_samples = f"folder:{tmp_path}", "all", 1000
    ds = pipeline.train_dataset(cfg, global_batch_size=2, seed=0, process_index=0,
                                process_count=1)
    with pytest.raises(ValueError, match="skipped"):
        next(iter(ds))
    assert len(ds.skips) == 3
