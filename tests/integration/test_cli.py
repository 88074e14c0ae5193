"""The runyard CLI, run as a real command."""
import os
import subprocess
import sys

import pytest

from runyard import Experiment

pytestmark = pytest.mark.integration


def cli(workspace, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "runyard", *args], capture_output=True, text=True,
                          env={**os.environ, **workspace.environment_variables()})
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def finished_run(workspace, tmp_path):
    run = Experiment(workspace, "digits").start_logging(display_name="baseline", outputs=False)
    for v in (0.9, 0.5, 0.25):
        run.log("loss", v)
    run.log("best acc@1", 0.97)
    run.log("grad norm", float("nan"))
    run.log("max ratio", float("inf"))
    (tmp_path / "m.pkl").write_bytes(b"m" * 2048)
    run.upload_file("outputs/m.pkl", str(tmp_path / "m.pkl"))
    run.upload_file("logs/train.log", str(tmp_path / "m.pkl"))
    run.tag("team", "vision")
    run.complete()
    return run


def test_runs_list_and_show(workspace, finished_run):
    out = cli(workspace, "runs", "list").stdout
    assert finished_run.id in out and "Completed" in out and "baseline" in out
    assert finished_run.id in cli(workspace, "runs", "list", "--experiment", "digits").stdout
    assert finished_run.id not in cli(workspace, "runs", "list", "--status", "Failed").stdout
    show = cli(workspace, "runs", "show", finished_run.id).stdout
    assert "team" in show and "vision" in show and "outputs/m.pkl" in show and "2.0 KB" in show


def test_experiments_lists_names_and_run_counts(workspace, finished_run):
    out = cli(workspace, "experiments").stdout
    (row,) = [line for line in out.splitlines() if "digits" in line]
    assert row.split("│")[3].strip() == "1"


def test_metrics_table_and_history(workspace, finished_run):
    out = cli(workspace, "metrics", finished_run.id).stdout
    assert "loss" in out and "0.25" in out and "best acc@1" in out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if line.count("│") > 3}
    assert rows["grad norm"] == "nan" and rows["max ratio"] == "inf"  # stored and shown, not dropped or zeroed
    history = cli(workspace, "metrics", finished_run.id, "--name", "loss").stdout
    assert all(v in history for v in ("0.9", "0.5", "0.25"))


def test_download_prefix(workspace, finished_run, tmp_path):
    cli(workspace, "download", finished_run.id, "outputs", "-o", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "outputs" / "m.pkl").read_bytes() == b"m" * 2048
    assert not (tmp_path / "dl" / "logs").exists()


def test_errors_are_one_line_not_tracebacks(workspace):
    proc = cli(workspace, "runs", "show", "no_such_run", check=False)
    assert proc.returncode == 1 and "error:" in proc.stderr and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli(workspace, "runs", "list", "--status", "Done", check=False)
    assert proc.returncode == 1 and "expected one of" in proc.stderr


def test_workspace_option_picks_the_folder(tmp_path):
    from runyard import Workspace

    ws = Workspace(tmp_path / "other")
    run = Experiment(ws, "x").start_logging(outputs=False)
    run.complete()
    proc = subprocess.run([sys.executable, "-m", "runyard", "-w", str(ws.path), "runs", "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and run.id in proc.stdout


def test_init_creates_a_project_workspace_and_reports_bad_urls(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "runyard", "init", str(tmp_path / "proj")], capture_output=True, text=True)
    assert proc.returncode == 0 and (tmp_path / "proj" / ".runyard" / "config.json").is_file()
    proc = subprocess.run([sys.executable, "-m", "runyard", "init", str(tmp_path / "p2"), "--tracking-uri",
                           "postgresql+psycopg://u:pw@127.0.0.1:1/db"], capture_output=True, text=True)
    assert proc.returncode == 1 and "127.0.0.1:1/db" in proc.stderr and "pw" not in proc.stderr
