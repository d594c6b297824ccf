import numpy as np
import pytest
from ml_collections import ConfigDict

from speechvae_jax.generate import data
from speechvae_jax.generate.text import FILLER, SILENCE, Vocab


def _record(i, frames, latent_dim=4):
    """A latent record with phonemes "a b c ..." spread evenly over its frames."""
    phones = list("abcdefgh")[: max(1, min(8, frames // 2))]
    edges = np.linspace(0, frames, len(phones) + 1).astype(np.int32)
    return {"id": f"u{i}", "num_frames": frames, "num_samples": frames * 400,
            "latent": np.full((frames, latent_dim), float(i), np.float32) + np.arange(frames)[:, None],
            "text": "ab ba", "phonemes": " ".join(phones), "speaker": "s",
            "phoneme_start_frames": edges[:-1], "phoneme_end_frames": np.maximum(edges[1:], edges[:-1] + 1)}


STATS = (np.full(4, 1.0, np.float32), np.full(4, 2.0, np.float32))


def _text(mode, units):
    return ConfigDict(dict(mode=mode, units=units, symbols=list("abcdefgh ")))


def test_latent_stats():
    mean, std = data.latent_stats({"latent_mean": [0.0, 1.0], "latent_std": [1.0, 2.0]})
    assert mean.dtype == np.float32 and std.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="unusable"):
        data.latent_stats({"latent_mean": [0.0], "latent_std": [0.0]})


def test_filler_examples_are_whole_utterances():
    text_cfg = _text("filler", "chars")
    ex = data.Examples(text_cfg, Vocab(text_cfg.symbols), STATS, max_frames=8)
    out = ex(_record(3, 6))
    np.testing.assert_allclose(out["latent"][:6, 0], (3.0 + np.arange(6) - 1.0) / 2.0)
    assert np.all(out["latent"][6:] == 0) and out["mask"].tolist() == [True] * 6 + [False] * 2
    assert out["tokens"].tolist() == [3, 4, 11, 4, 3] + [FILLER] * 3       # "ab ba"
    assert ex(_record(0, 9)) is None                                        # longer than 8 frames
    assert ex(dict(_record(0, 4), text="abcdefgh")) is None                 # 8 chars in 4 frames


def test_aligned_examples_crop_windows_with_their_tokens():
    text_cfg = _text("aligned", "phonemes")
    ex = data.Examples(text_cfg, Vocab(text_cfg.symbols), STATS, max_frames=4)
    rec = _record(1, 16)                                                    # 8 phonemes, 2 frames each
    first = ex(rec)
    assert first["tokens"].tolist() == [3, 3, 4, 4] and first["mask"].all()
    starts = set()
    for seed in range(30):
        out = ex(rec, np.random.default_rng(seed))
        start = int(round(out["latent"][0, 0] * 2))          # record 1: (1 + start - 1) / 2
        starts.add(start)
        np.testing.assert_array_equal(out["tokens"], [3 + (start + k) // 2 for k in range(4)])
    assert len(starts) > 5 and max(starts) <= 12
    no_timing = {k: v for k, v in rec.items() if not k.startswith("phoneme_")}
    assert ex(no_timing) is None
    gaps = dict(_record(2, 8), phonemes="a", phoneme_start_frames=np.array([2]), phoneme_end_frames=np.array([3]))
    assert data.frame_tokens(gaps, text_cfg, Vocab(text_cfg.symbols)).tolist() == [SILENCE] * 2 + [3] + [SILENCE] * 5


def test_train_dataset_batches_resume_and_partition():
    text_cfg = _text("aligned", "phonemes")
    ex = data.Examples(text_cfg, Vocab(text_cfg.symbols), STATS, max_frames=6)
    records = [_record(i, 4 + i % 7) for i in range(10)]
    it = iter(data.train_dataset(records, ex, global_batch_size=4, seed=0, process_index=0, process_count=1))
    first = next(it)
    assert first["latent"].shape == (4, 6, 4) and first["tokens"].dtype == np.int32
    state = it.get_state()
    ahead = [next(it) for _ in range(3)]
    it.set_state(state)
    again = [next(it) for _ in range(3)]
    for a, b in zip(ahead, again):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    short = [_record(i, 4 + i % 3) for i in range(10)]                      # no crops: frame 0 names the record
    seen = [set(), set()]
    for p in range(2):
        it = iter(data.train_dataset(short, ex, global_batch_size=4, seed=0, process_index=p, process_count=2))
        for _ in range(6):
            seen[p] |= {int(round(v)) for v in (next(it)["latent"][:, 0, 0] * 2 + 1)}
    assert seen[0] == {0, 2, 4, 6, 8} and seen[1] == {1, 3, 5, 7, 9}
    with pytest.raises(ValueError, match="divisible"):
        data.train_dataset(records, ex, global_batch_size=3, seed=0, process_index=0, process_count=2)


def test_fixed_batches():
    text_cfg = _text("filler", "chars")
    ex = data.Examples(text_cfg, Vocab(text_cfg.symbols), STATS, max_frames=8)
    records = [_record(i, 6 if i != 1 else 20) for i in range(6)]           # record 1 is too long
    batches = data.fixed_batches(records, ex, batch_size=2, num_batches=3)
    assert len(batches) == 3                                                # 5 usable records, one empty row
    np.testing.assert_allclose(batches[0]["latent"][:, 0, 0] * 2 + 1, [0, 2])
    assert batches[2]["mask"][0].any() and not batches[2]["mask"][1].any()
    assert len(data.fixed_batches(records, ex, batch_size=2, num_batches=1)) == 1
    assert data.fixed_batches(records[1:2], ex, batch_size=2, num_batches=1) == []


def test_join_records_shifts_the_second_utterances_timings():
    text_cfg = _text("aligned", "phonemes")
    vocab = Vocab(text_cfg.symbols)
    a, b = _record(1, 4), _record(2, 6)
    joined = data.join_records(a, b)
    assert joined["num_frames"] == 10 and joined["id"] == "u2" and joined["text"] == "ab ba ab ba"
    np.testing.assert_array_equal(joined["latent"], np.concatenate([a["latent"], b["latent"]]))
    assert joined["phonemes"].split() == a["phonemes"].split() + b["phonemes"].split()
    np.testing.assert_array_equal(data.frame_tokens(joined, text_cfg, vocab),
                                  np.concatenate([data.frame_tokens(a, text_cfg, vocab),
                                                  data.frame_tokens(b, text_cfg, vocab)]))


def test_speaker_groups():
    groups = data.speaker_groups(["x", "y", "x", "", "x"])
    assert [g.tolist() for g in groups] == [[2, 4], [], [0, 4], [], [0, 2]]


def test_prompt_pairs_put_a_same_speaker_utterance_first():
    text_cfg = _text("aligned", "phonemes")
    ex = data.Examples(text_cfg, Vocab(text_cfg.symbols), STATS, max_frames=12)
    records = [dict(_record(i, 5), speaker=f"s{i % 3}") for i in range(9)] + [dict(_record(9, 5), speaker="alone")]
    it = iter(data.train_dataset(records, ex, global_batch_size=5, seed=0, process_index=0, process_count=1,
                                 prompt_pairs=1.0))
    pairs = set()
    for _ in range(8):
        batch = next(it)
        for row, mask in zip(batch["latent"][:, :, 0] * 2 + 1, batch["mask"]):
            first = int(round(row[0]))
            if first == 9:                                   # the speaker without another utterance
                assert mask.sum() == 5
                continue
            assert mask.sum() == 10
            second = int(round(row[5]))
            assert first != second and first % 3 == second % 3
            pairs.add((first, second))
    assert len(pairs) > 8
    val = data.fixed_batches(records, ex, batch_size=5, num_batches=2, prompt_pairs=True)
    firsts = (val[0]["latent"][:, 0, 0] * 2 + 1).round().astype(int).tolist()
    seconds = (val[0]["latent"][:, 5, 0] * 2 + 1).round().astype(int).tolist()
    assert firsts == [3, 4, 5, 0, 1] and seconds == [0, 1, 2, 3, 4]
