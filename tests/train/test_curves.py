"""`python -m speechvae_jax.train.curves`: the validation curve of a run read back from metrics.jsonl."""
import json
import math

from speechvae_jax.train import curves


def test_curve_keeps_validation_rows_in_step_order_with_elapsed_time(tmp_path):
    rows = [{"step": 1, "perf/wall_time": 100.0, "loss": 3.0},
            {"step": 4, "perf/wall_time": 160.0, "val/stft": 1.5, "val/mel": 0.7},
            {"step": 2, "perf/wall_time": 130.0, "val/stft": 1.9, "val/mel": 0.9}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = curves.validation_curve(str(tmp_path))
    assert curve == [{"step": 2, "elapsed_s": 30.0, "val/stft": 1.9, "val/mel": 0.9},
                     {"step": 4, "elapsed_s": 60.0, "val/stft": 1.5, "val/mel": 0.7}]
    curves.plot_curve(curve, str(tmp_path / "curves.png"), title="run")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_without_wall_time_have_no_elapsed_time(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 2, "val/stft": 1.0, "val/mel": 0.5}) + "\n")
    [row] = curves.validation_curve(str(tmp_path))
    assert row["step"] == 2 and math.isnan(row["elapsed_s"])
    assert curves.validation_curve(str(tmp_path / "missing")) == []
