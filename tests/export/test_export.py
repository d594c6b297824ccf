"""`export_model` / `verify_export` / `latent_source` on real speech with a real (random-weight) tiny VAE."""
import json
import os
import pickle

import grain
import numpy as np
import pytest

from speechvae_jax import fileio
from speechvae_jax.data.audio import AudioError
from speechvae_jax.data.sources import open_source
from speechvae_jax.export import codec, latent_source, layout, writer

PAD = 32000  # 2 s of zeros: far more than the encoder's receptive field


def direct_encoding(model, audios):
    """Reference: each whole utterance in one call, zero-padded well past its end (all to one
    length, so one compilation) -> [(mean, sigma) [T_i, L]]."""
    width = max(len(a) for a in audios) + PAD
    batch = np.stack([np.pad(a, (0, width - len(a))) for a in audios])
    mean, sigma, _ = model.encode(batch)
    frames = [-(-len(a) // model.hop) for a in audios]
    return [(np.asarray(mean)[i, :t], np.asarray(sigma)[i, :t]) for i, t in enumerate(frames)]


def run_export(model, source, out, **kw):
    options = writer.ExportOptions(**{"shard_size": 4, **kw})
    return writer.export_model(model, source, str(out), source_spec="test-source", split="test",
                               options=options)


def dir_bytes(path) -> dict:
    return {f: open(os.path.join(path, f), "rb").read() for f in sorted(os.listdir(path))}


@pytest.fixture(scope="module")
def speech(tiny_corpus):
    return open_source(tiny_corpus, "test")


@pytest.fixture(scope="module")
def reference(tiny_model, speech):
    return direct_encoding(tiny_model, [speech[i]["audio"] for i in range(len(speech))])


@pytest.fixture(scope="module")
def export32(tiny_model, speech, tmp_path_factory):
    out = tmp_path_factory.mktemp("export32")
    run_export(tiny_model, speech, out, dtype="float32")
    return str(out)


@pytest.fixture(scope="module")
def export16(tiny_model, speech, tmp_path_factory):
    out = tmp_path_factory.mktemp("export16")
    run_export(tiny_model, speech, out)
    return str(out)


def test_read_back_equals_direct_encoding(reference, speech, export32, export16):
    src32, src16 = latent_source(export32), latent_source(export16)
    assert len(src32) == len(speech) == len(src16)
    for i in range(len(speech)):
        utt, rec = speech[i], src32[i]
        mean, _ = reference[i]
        assert rec["id"] == utt["id"]
        assert rec["num_frames"] == mean.shape[0] == -(-len(utt["audio"]) // 400)
        assert rec["num_samples"] == len(utt["audio"])
        np.testing.assert_allclose(rec["latent"], mean, rtol=0, atol=1e-5 * np.abs(mean).max())
        # float16 export = the float32 latent rounded to float16.
        np.testing.assert_array_equal(src16[i]["latent"], rec["latent"].astype(np.float16).astype(np.float32))
        for key in ("text", "phonemes", "speaker", "keyword"):
            assert rec[key] == utt[key]
        np.testing.assert_array_equal(rec["phoneme_starts"], utt["phoneme_starts"])
        np.testing.assert_array_equal(rec["phoneme_start_frames"], np.asarray(utt["phoneme_starts"]) // 400)
        ends = np.asarray(utt["phoneme_ends"])
        want_end = np.minimum(np.maximum(-(-ends // 400), np.asarray(utt["phoneme_starts"]) // 400 + 1),
                              rec["num_frames"])
        np.testing.assert_array_equal(rec["phoneme_end_frames"], want_end)
    assert any(len(speech[i]["phoneme_starts"]) for i in range(len(speech)))  # timings were exercised


def test_manifest_statistics_and_counts(speech, export16, tiny_model):
    src = latent_source(export16)
    m = src.manifest
    every = np.concatenate([src[i]["latent"] for i in range(len(src))]).astype(np.float64)
    np.testing.assert_allclose(m["latent_mean"], every.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m["latent_std"], every.std(0), rtol=1e-9, atol=1e-9)
    assert m["counts"] == {"inputs": len(speech), "records": len(speech), "skipped": 0, "frames": len(every)}
    assert m["total_seconds"] == pytest.approx(sum(len(speech[i]["audio"]) for i in range(len(speech))) / 16000)
    assert (m["frame_rate"], m["hop"], m["latent_dim"], m["mode"], m["dtype"]) == (40.0, 400, 64, "mean", "float16")
    assert m["checkpoint"] == {"step": tiny_model.step, "hash": tiny_model.checkpoint_hash}
    assert m["model"]["config"]["encoder"]["d_model"] == tiny_model.config.model.encoder.d_model
    assert len(m["shards"]) == -(-len(speech) // 4) and m["skipped"] == []
    assert writer.verify_export(export16) == {"shards": len(m["shards"]), "records": len(speech)}


def test_same_command_twice_gives_identical_bytes(tiny_model, speech, export16, tmp_path):
    run_export(tiny_model, speech, tmp_path)
    assert dir_bytes(tmp_path) == dir_bytes(export16)


def export_killed_at_second_shard(model, source, out, monkeypatch):
    """Run an export that is killed (KeyboardInterrupt) as its second shard starts; -> the real
    `_export_shard`, restored."""
    real, calls = writer._export_shard, []

    def dies_on_second_shard(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kw)

    monkeypatch.setattr(writer, "_export_shard", dies_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        run_export(model, source, out)
    monkeypatch.setattr(writer, "_export_shard", real)
    return real


def test_killed_export_resumes_to_the_same_result(tiny_model, speech, export16, tmp_path, monkeypatch):
    export_killed_at_second_shard(tiny_model, speech, tmp_path, monkeypatch)
    assert not os.path.exists(tmp_path / layout.MANIFEST)
    # A half-written shard from the dead process, and a finished shard whose summary never landed.
    num = len(latent_source(export16).manifest["shards"])
    with open(tmp_path / (layout.shard_name(1, num) + ".tmp-p0"), "wb") as f:
        f.write(b"partial")
    with open(tmp_path / layout.shard_name(2, num), "wb") as f:
        f.write(b"torn")
    with pytest.raises(writer.ExportError, match="not finished"):
        writer.build_manifest(str(tmp_path), fileio.read_json(tmp_path / layout.SETTINGS), (11, 11))
    run_export(tiny_model, speech, tmp_path)
    assert dir_bytes(tmp_path) == dir_bytes(export16)
    writer.verify_export(str(tmp_path))


def test_resume_with_other_settings_is_refused(tiny_model, speech, export16):
    with pytest.raises(writer.ExportError, match="different settings.*mode"):
        run_export(tiny_model, speech, export16, mode="sample")


def test_verify_finds_corruption(export16, tmp_path):
    for f, data in dir_bytes(export16).items():
        (tmp_path / f).write_bytes(data)
    shard = latent_source(export16).manifest["shards"][1]["file"]
    data = bytearray((tmp_path / shard).read_bytes())
    data[100] ^= 0xFF
    (tmp_path / shard).write_bytes(bytes(data))
    with pytest.raises(writer.ExportError, match=f"{shard}: sha256"):
        writer.verify_export(str(tmp_path))
    os.remove(tmp_path / layout.MANIFEST)
    with pytest.raises(writer.ExportError, match="unfinished"):
        writer.verify_export(str(tmp_path))


class FaultySource:
    """The test split with bad items injected: an unreadable one, NaN audio, empty audio, one too long."""

    def __init__(self, base):
        self.base = base
        long_audio = np.concatenate([base[i]["audio"] for i in range(len(base))])
        self.long = {**base[0], "id": "long-one", "audio": long_audio}

    def __len__(self):
        return len(self.base) + 2

    def __getitem__(self, i):
        if i == len(self.base):
            return self.long
        if i == len(self.base) + 1:
            raise AudioError("/data/broken.flac", "cannot decode: not a FLAC file")
        utt = dict(self.base[i])
        if i == 1:
            utt["audio"] = np.full(4000, np.nan, np.float32)
        if i == 2:
            utt["audio"] = np.zeros(0, np.float32)
        return utt


def test_bad_inputs_are_skipped_and_listed(tiny_model, speech, tmp_path):
    source = FaultySource(speech)
    m = run_export(tiny_model, source, tmp_path,
                   buckets=codec.Buckets(max_seconds=len(source.long["audio"]) / 16000 - 1))
    skipped = {s["index"]: s for s in m["skipped"]}
    assert sorted(skipped) == [1, 2, len(speech), len(speech) + 1]
    assert "non-finite" in skipped[1]["reason"] and skipped[1]["id"] == speech[1]["id"]
    assert "non-empty" in skipped[2]["reason"]
    assert skipped[len(speech)]["id"] == "long-one" and "too long" in skipped[len(speech)]["reason"]
    assert skipped[len(speech) + 1] == {"index": len(speech) + 1, "id": "/data/broken.flac",
                                        "reason": "cannot decode: not a FLAC file"}
    assert m["counts"]["records"] == len(speech) - 2 and m["counts"]["skipped"] == 4
    src = latent_source(str(tmp_path))
    assert src.ids() == [speech[i]["id"] for i in range(len(speech)) if i not in (1, 2)]
    writer.verify_export(str(tmp_path))


def test_long_input_is_encoded_in_windows_exactly(tiny_model, speech, tmp_path):
    source = FaultySource(speech)
    only_long = [source.long]
    m = run_export(tiny_model, only_long, tmp_path, dtype="float32",
                   buckets=codec.Buckets(frames=(96,), frames_per_batch=192))
    assert m["counts"]["records"] == 1
    got = latent_source(str(tmp_path))[0]["latent"]
    [(mean, _)] = direct_encoding(tiny_model, [source.long["audio"]])
    assert got.shape == mean.shape and mean.shape[0] > 5 * 96  # many windows
    np.testing.assert_allclose(got, mean, rtol=0, atol=1e-5 * np.abs(mean).max())


def test_sample_mode_is_seeded_per_utterance(tiny_model, speech, reference, tmp_path):
    some = [speech[i] for i in range(4)]
    a = run_export(tiny_model, some, tmp_path / "a", mode="sample", dtype="float32", seed=3)
    run_export(tiny_model, some, tmp_path / "b", mode="sample", dtype="float32", seed=4)
    assert a["seed"] == 3
    src_a, src_b = latent_source(str(tmp_path / "a")), latent_source(str(tmp_path / "b"))
    eps = []
    for i in range(len(some)):
        za, zb = src_a[i]["latent"], src_b[i]["latent"]
        assert not np.allclose(za, zb)
        mean, sigma = reference[i]
        eps.append((za - mean) / sigma)
    eps = np.concatenate(eps).ravel()
    assert abs(eps.mean()) < 0.05 and abs(eps.std() - 1) < 0.05


def test_latent_source_is_a_grain_source(export16, speech):
    src = latent_source(export16)
    clone = pickle.loads(pickle.dumps(src))
    ds = grain.MapDataset.source(clone).map(lambda r: (r["id"], r["latent"].shape))
    assert [x[0] for x in ds] == [speech[i]["id"] for i in range(len(speech))]
    assert src.index_of(speech[3]["id"]) == 3
    assert src[-1]["id"] == speech[len(speech) - 1]["id"]
    with pytest.raises(IndexError):
        src[len(src)]
    with pytest.raises(KeyError, match="nope"):
        src.index_of("nope")
    with pytest.raises(FileNotFoundError, match="not a finished export"):
        latent_source(os.path.dirname(export16))


def test_speakers_come_from_the_summaries_or_the_records(export16, speech, tmp_path):
    expected = [speech[i]["speaker"] for i in range(len(speech))]
    assert len(set(expected)) > 1
    assert latent_source(export16).speakers() == expected
    for f, data in dir_bytes(export16).items():             # an export from before summaries held speakers
        (tmp_path / f).write_bytes(data)
        if f.endswith(".json") and f != layout.MANIFEST:
            summary = json.loads(data)
            if summary.pop("speakers", None) is not None:
                (tmp_path / f).write_text(json.dumps(summary))
    assert latent_source(str(tmp_path)).speakers() == expected
    writer.verify_export(str(tmp_path))


def test_an_export_to_gs_resumes_verifies_and_reads_back(tiny_model, speech, export16, gcs_bucket, tmp_path,
                                                          monkeypatch):
    """gs:// (a local GCS server): a killed export resumes, its objects are the local export's bytes,
    verify fetches and checks them (and catches a changed object), the reader reads cached copies."""
    monkeypatch.setenv("SPEECHVAE_CACHE", str(tmp_path / "cache"))
    out = f"{gcs_bucket}/export/test16"
    real = export_killed_at_second_shard(tiny_model, speech, out, monkeypatch)
    assert not fileio.exists(f"{out}/{layout.MANIFEST}")
    resumed = []
    monkeypatch.setattr(writer, "_export_shard", lambda *a, **kw: resumed.append(a[3]) or real(*a, **kw))
    run_export(tiny_model, speech, out)
    num_shards = len(latent_source(export16).manifest["shards"])
    assert resumed == list(range(1, num_shards))  # shard 0 finished before the kill and was kept
    objects = {p.name: p.read_bytes() for p in fileio.as_path(out).iterdir()}
    assert objects == dir_bytes(export16)
    writer.verify_export(out)
    src, ref = latent_source(out), latent_source(export16)
    assert len(src) == len(ref)
    for i in range(len(ref)):
        assert src[i]["id"] == ref[i]["id"]
        np.testing.assert_array_equal(src[i]["latent"], ref[i]["latent"])
    assert src.ids() == ref.ids()
    shard = src.manifest["shards"][1]["file"]
    data = bytearray(objects[shard])
    data[100] ^= 0xFF
    fileio.as_path(f"{out}/{shard}").write_bytes(bytes(data))
    with pytest.raises(writer.ExportError, match=f"{shard}: sha256"):
        writer.verify_export(out)
