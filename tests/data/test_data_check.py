"""`speechvae data check`: counts, durations, rates and problems by file."""
import numpy as np
import soundfile as sf

from speechvae_jax import corpus
from speechvae_jax.data import check


def test_check_folder_reports_problems_by_file(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32) + 0.1, 16000)
    sf.write(tmp_path / "b.flac", np.zeros(22050, np.float32) + 0.1, 22050)
    (tmp_path / "c.ogg").write_bytes(b"OggS" + b"\0" * 64)
    report = check.check_source(f"folder:{tmp_path}")
    (s,) = report.splits
    assert s.split == "all" and s.items == 3 and len(s.durations) == 2
    np.testing.assert_allclose(sorted(s.durations), [0.5, 1.0], atol=1e-3)
    assert s.rates == {16000: 1, 22050: 1} and report.problems == 1
    text = report.format()
    assert "items 3, usable 2, problems 1" in text and "c.ogg" in text and "22050 Hz x1" in text


def test_check_corpus_covers_all_splits(tiny_corpus):
    report = check.check_source(tiny_corpus)
    info = corpus.corpus_info(tiny_corpus.split(":", 1)[1])
    assert {s.split for s in report.splits} == set(info["splits"])
    for s in report.splits:
        assert s.items == len(s.durations) == info["splits"][s.split]["utterances"]
        np.testing.assert_allclose(sum(s.durations), info["splits"][s.split]["seconds"], atol=0.01)
        assert s.rates == {16000: s.items}
    assert report.problems == 0 and "total problems: 0" in report.format()
