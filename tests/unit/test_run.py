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


def test_offline_run_has_the_whole_file_api(tmp_path, capsys):
    (tmp_path / "out" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "a.txt").write_text("a")
    (tmp_path / "out" / "sub" / "b.txt").write_text("bb")
    run = OfflineRun()
    assert run.upload_folder("outputs", tmp_path / "out") == ["outputs/a.txt", "outputs/sub/b.txt"]
    import io

    run.upload_files(["logs/x.log"], [io.BytesIO(b"log")])
    assert run.get_file_names() == ["logs/x.log", "outputs/a.txt", "outputs/sub/b.txt"]
    got = run.download_files(prefix="outputs", output_directory=tmp_path / "dl", append_prefix=False)
    assert sorted(got) == sorted([str(tmp_path / "dl" / "a.txt"), str(tmp_path / "dl" / "sub" / "b.txt")])
    assert (tmp_path / "dl" / "sub" / "b.txt").read_text() == "bb"
    assert "Attempted to upload file outputs/a.txt" in capsys.readouterr().out
    root = OfflineRun()
    assert root.upload_folder("", tmp_path / "out") == ["a.txt", "sub/b.txt"]  # "" = the run's root
