import json
import shutil

import numpy as np
import pytest

from speechvae_jax.evaluate import checkpoint_curve


def test_curve_rows_with_cpu_time(untrained_run, tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(untrained_run, run, ignore=shutil.ignore_patterns("eval"))
    with open(f"{run}/metrics.jsonl", "w") as f:
        f.write(json.dumps({"step": 0, "perf/wall_time": 1000.0, "val/stft": 2.5}) + "\n")
    # 100 ticks per second; 20 s of CPU by wall time 990, 80 s by 1010: 50 s at the checkpoint (1000).
    with open(f"{run}/cpu.log", "w") as f:
        f.write("990.0 2000 100\n1010.0 8000 100\n")
    rows = checkpoint_curve.checkpoint_curve(run, cpu_log=f"{run}/cpu.log", utterances=2)
    assert len(rows) == 1
    row = rows[0]
    assert row["step"] == 0 and row["wall_min"] == 0.0 and row["val_stft"] == 2.5
    assert row["cpu_min"] == pytest.approx(50.0 / 60.0)
    assert 0.0 <= row["stoi"] <= 1.0 and np.isfinite(row["pesq_wb"]) and row["mel_distance"] > 0
    assert row["wer"] is not None and row["wer_ground_truth"] is not None
    assert row["dc_offset"] >= 0 and np.isfinite(row["frame_comb_db"])
    table = checkpoint_curve.format_table(rows).splitlines()
    assert table[0].startswith("| step | wall_min | cpu_min | val_stft | stoi") and table[2].startswith("| 0 | 0.000")
