"""The README's demo keeps working."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_records_its_runs(tmp_path):
    env = {**os.environ, "RUNYARD_HOME": str(tmp_path / "demo-ws")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from runyard import Experiment, Workspace

    runs = list(Experiment(Workspace(tmp_path / "demo-ws"), "digits").get_runs())
    assert len(runs) == 2 and all(r.get_status() == "Completed" for r in runs)
    script_run = next(r for r in runs if r.display_name.startswith("train.py"))
    metrics = script_run.get_metrics()
    assert metrics["accuracy"] > 0.8 and len(metrics["loss"]) == 60 and len(metrics["progress"]["epoch"]) == 60
    assert script_run.type == "script" and "outputs/model.pkl" in script_run.get_file_names()
    assert "logs/user_log_0.txt" in script_run.get_file_names()
    cv = next(r for r in runs if r.display_name.startswith("nearest"))
    assert len(list(cv.get_children())) == 5 and cv.get_metrics()["mean accuracy"] > 0.8
