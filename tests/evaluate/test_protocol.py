"""The evaluation protocol as a ConfigDict, its presets, selections and the per-speaker split."""
import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.evaluate import datasets, protocol
from speechvae_jax.presets.run import load_config_file


def test_default_config_is_the_corpus_protocol():
    cfg = protocol.default_eval_config()
    protocol.check_eval_config(cfg)
    assert cfg.reconstruction.utterances == 16 and cfg.reconstruction.split == "test"
    assert set(cfg.understanding.tasks) == {"phoneme_frame", "phoneme_ctc", "speaker_id", "keyword"}
    assert tuple(cfg.understanding.feature_sets) == protocol.FEATURE_SETS
    assert protocol.limit(-1) is None and protocol.limit(7) == 7


@pytest.mark.parametrize("preset", ["corpus", "librispeech", "librispeech_smoke", "natural"])
def test_presets_validate(preset):
    cfg = load_config_file("eval", preset)
    protocol.check_eval_config(cfg)
    if preset.startswith("librispeech"):
        tasks = cfg.understanding.tasks
        assert cfg.reconstruction.split == "test-clean"
        assert tasks.speaker_id.test == "" and 0 < tasks.speaker_id.test_fraction < 1
        assert tasks.keyword.selection == "balanced" and "teacher_layers" not in tasks.phoneme_ctc.feature_sets
    with pytest.raises(ValueError, match="unknown eval preset"):
        load_config_file("eval", "nope")


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c.reconstruction, "utterances", 0), "utterances -1 or >= 1"),
    (lambda c: setattr(c.reconstruction, "selection", "best"), "selection in"),
    (lambda c: setattr(c.understanding, "feature_sets", ("latent", "mfcc")), "'mfcc'"),
    (lambda c: setattr(c.understanding.tasks.keyword, "kind", "lstm"), "tasks.keyword: kind 'lstm'"),
    (lambda c: setattr(c.understanding.tasks.speaker_id, "test", ""), "needs 0 < test_fraction < 1"),
    (lambda c: setattr(c.understanding.tasks.keyword, "metric", "per"), "metric 'per'"),
    (lambda c: setattr(c.understanding.tasks.keyword, "feature_sets", ("wavlm",)), "feature set 'wavlm'"),
    (lambda c: setattr(c.understanding.tasks.phoneme_ctc, "train_utterances", -3), "utterance counts"),
])
def test_bad_settings_are_named(change, message):
    cfg = protocol.default_eval_config()
    change(cfg)
    with pytest.raises(ValueError, match=message):
        protocol.check_eval_config(cfg)


def test_speaker_split_is_seeded_and_per_speaker():
    recs = [{"id": f"{s}-{k}", "speaker": s} for s in ("a", "b", "c") for k in range(10)]
    recs.append({"id": "d-0", "speaker": "d"})
    train, test = datasets.speaker_split(recs, 0.2, seed=0)
    assert len(train) + len(test) == len(recs) and not {r["id"] for r in train} & {r["id"] for r in test}
    for s in "abc":
        assert sum(r["speaker"] == s for r in test) == 2
    assert all(r["speaker"] != "d" for r in test)  # one utterance: train only
    assert datasets.speaker_split(recs, 0.2, seed=0) == (train, test)
    assert datasets.speaker_split(recs, 0.2, seed=1)[1] != test
    assert [r["id"] for r in train] == [r["id"] for r in recs if r in train]  # order kept


def test_datasets_read_chunks_and_fill_g2p(tmp_path):
    d = tmp_path / "LibriSpeech" / "test-clean" / "61" / "70968"
    d.mkdir(parents=True)
    lines = []
    for k in range(5):
        uid = f"61-70968-{k:04d}"
        sf.write(d / f"{uid}.flac", np.full(4000 + 800 * k, 0.1, np.float32), 16000)
        lines.append(f"{uid} HELLO WORLD NUMBER {k}")
    (d / "61-70968.trans.txt").write_text("\n".join(lines) + "\n")
    store = datasets.Datasets(str(tmp_path / "g2p"))
    sel = datasets.Selection(f"folder:{tmp_path / 'LibriSpeech'}", "test-clean", 3)
    source, index = store.indices(sel)
    assert index.tolist() == [0, 2, 4] and len(source) == 5
    recs, info = store.read(sel)
    assert [r["id"] for r in recs] == ["61-70968-0000", "61-70968-0002", "61-70968-0004"]
    assert recs[0]["phonemes"].startswith("h @ l oU w 3: l d") and info["g2p"]["converted"] == 3
    assert info["selected"] == 3 and info["available"] == 5 and sel.name.endswith("[test-clean]@3")
    chunk, chunk_info = store.read(sel, [1, 2])
    assert [r["id"] for r in chunk] == ["61-70968-0002", "61-70968-0004"] and chunk_info["g2p"]["cached"] == 2
    sub = datasets.Subset(source, index)
    assert len(sub) == 3 and sub[1]["id"] == "61-70968-0002" and sub.item_name(2).endswith("0004.flac")
    with pytest.raises(KeyError):
        store.indices(datasets.Selection(f"folder:{tmp_path / 'LibriSpeech'}", "keywords_train", 3))
