"""Record bytes and label conversion (no model needed)."""
import msgpack
import numpy as np
import pytest

from speechvae_jax.export import records


def test_record_round_trip_keeps_latent_and_labels():
    z = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).astype(np.float16)
    labels = {"text": "hello there", "speaker": "spk1", "keyword": "", "n": np.int64(5),
              "phoneme_starts": np.array([0, 400, 900], np.int32)}
    blob = records.encode_record("utt-1", z, 1000, labels)
    assert blob == records.encode_record("utt-1", z, 1000, labels)  # deterministic bytes
    rec = records.decode_record(blob)
    assert list(rec)[:4] == ["id", "num_frames", "num_samples", "latent"]
    assert rec["id"] == "utt-1" and rec["num_frames"] == 3 and rec["num_samples"] == 1000
    assert rec["latent"].dtype == np.float32
    np.testing.assert_array_equal(rec["latent"], z.astype(np.float32))
    assert records.decode_record(blob, keep_dtype=True)["latent"].dtype == np.float16
    assert rec["text"] == "hello there" and rec["n"] == 5
    np.testing.assert_array_equal(rec["phoneme_starts"], [0, 400, 900])
    assert rec["phoneme_starts"].dtype == np.int32
    # The record is plain msgpack: any msgpack reader sees the fields.
    assert msgpack.unpackb(blob)["speaker"] == "spk1"


def test_frame_timings_match_reference():
    hop, frames = 400, 10
    starts = np.array([0, 399, 400, 1000, 3990, 5000])
    ends = np.array([399, 400, 800, 1000, 4000, 5200])
    s, e = records.frame_timings(starts, ends, hop, frames)
    ref_s, ref_e = [], []
    for a, b in zip(starts, ends):
        fs = min(a // hop, frames)
        fe = min(max(int(np.ceil(b / hop)), fs + 1), frames)
        ref_s.append(fs)
        ref_e.append(fe)
    np.testing.assert_array_equal(s, ref_s)
    np.testing.assert_array_equal(e, ref_e)
    assert list(s) == [0, 0, 1, 2, 9, 10] and list(e) == [1, 1, 2, 3, 10, 10]


def test_labels_of_adds_frame_timings_and_drops_audio():
    utt = {"id": "a", "audio": np.zeros(2000, np.float32), "text": "t",
           "phoneme_starts": np.array([0, 800]), "phoneme_ends": np.array([800, 2000])}
    labels = records.labels_of(utt, 400, 5)
    assert set(labels) == {"text", "phoneme_starts", "phoneme_ends", "phoneme_start_frames",
                           "phoneme_end_frames"}
    np.testing.assert_array_equal(labels["phoneme_start_frames"], [0, 2])
    np.testing.assert_array_equal(labels["phoneme_end_frames"], [2, 5])


def test_bad_labels_raise_clear_errors():
    z = np.zeros((1, 2), np.float16)
    with pytest.raises(ValueError, match="clashes"):
        records.encode_record("u", z, 10, {"latent": 1})
    with pytest.raises(TypeError, match="set"):
        records.encode_record("u", z, 10, {"tags": {1, 2}})
