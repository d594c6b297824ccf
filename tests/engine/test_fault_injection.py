"""The fault-injection script at a small N: training and export killed twice each (SIGKILL at random
moments) resume to exactly the uninterrupted result."""
import pytest

from tests import fault_injection


@pytest.mark.slow
def test_training_and_export_survive_random_kills(tmp_path, capsys):
    code = fault_injection.main(["--kills", "2", "--seed", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training: 2 kills" in out and "EQUAL" in out
    assert "export: 2 kills" in out and "BYTE-IDENTICAL" in out
