from runyard import OfflineRun, Run
from runyard.errors import RunyardError
import pytest


def test_get_context_outside_runyard_is_offline_and_prints(capsys):
    run = Run.get_context()
    assert isinstance(run, OfflineRun) and Run.get_context() is run
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.log_row("t", epoch=1, acc=0.9)
    assert "Attempted to log scalar metric loss:\n0.5" in capsys.readouterr().out
    assert run.get_metrics() == {"loss": [0.5, 0.25], "t": {"epoch": [1], "acc": [0.9]}}
    run.tag("a", "b")
    child = run.child_run("c")
    child.complete()
    run.complete()
    assert run.get_tags() == {"a": "b"} and run.get_status() == "Completed" and child.parent is run


def test_offline_run_keeps_uploaded_files(tmp_path):
    src = tmp_path / "m.txt"
    src.write_text("model")
    run = OfflineRun()
    run.upload_file("outputs/m.txt", str(src))
    assert run.get_file_names() == ["outputs/m.txt"]
    assert open(run.download_file("outputs/m.txt", str(tmp_path / "copy.txt"))).read() == "model"


def test_get_context_can_refuse_offline():
    with pytest.raises(RunyardError, match="RUNYARD_RUN_ID"):
        Run.get_context(allow_offline=False)
