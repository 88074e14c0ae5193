"""runyard submit / logs / cancel / demo, run as real commands."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runyard import Workspace

pytestmark = pytest.mark.integration


def cli(ws_path, *args, cwd=None, check=True, timeout=120):
    proc = subprocess.run([sys.executable, "-m", "runyard", "-w", str(ws_path), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "train.py").write_text(
        "import sys, time\nprint('got', sys.argv[1:], flush=True)\n"
        "if '--fail' in sys.argv: sys.exit(7)\n"
        "if '--slow' in sys.argv: time.sleep(60)\n")
    return root


def test_submit_wait_streams_output_and_sets_the_exit_status(tmp_path, proj):
    ws = Workspace(tmp_path / "ws").path  # -w names an existing workspace (only `runyard init` makes one)
    out = cli(ws, "submit", "-s", str(proj), "train.py", "--experiment", "cli", "--tag", "k=v", "--wait",
              "--", "--lr", "0.01").stdout
    assert "got ['--lr', '0.01']" in out and "Status: Completed" in out
    failed = cli(ws, "submit", "-s", str(proj), "train.py", "--wait", "--", "--fail", check=False)
    assert failed.returncode == 1 and "exited with code 7" in failed.stdout
    listing = cli(ws, "runs", "list").stdout
    assert "Completed" in listing and "Failed" in listing and "local" in listing
    run_id = next(r.run_id for r in Workspace(ws).metadata.list_runs() if r.status.value == "Completed")
    assert Workspace(ws).metadata.get_run(run_id).tags == {"k": "v"}
    assert "got ['--lr', '0.01']" in cli(ws, "logs", run_id).stdout
    shown = cli(ws, "runs", "show", run_id).stdout
    assert "train.py --lr 0.01" in shown and "local" in shown


def test_submit_returns_at_once_then_logs_follow_and_cancel(tmp_path, proj):
    ws = Workspace(tmp_path / "ws").path  # -w names an existing workspace (only `runyard init` makes one)
    out = cli(ws, "submit", "-s", str(proj), "train.py", "--", "--slow").stdout
    run_id = out.split("submitted run ")[1].split()[0]
    follower = subprocess.Popen([sys.executable, "-m", "runyard", "-w", str(ws), "logs", "-f", run_id],
                                stdout=subprocess.PIPE, text=True)
    first = follower.stdout.readline()
    assert "got ['--slow']" in first
    assert "Canceled" in cli(ws, "cancel", run_id).stdout
    assert follower.wait(timeout=10) == 0  # the follower ends with the run
    assert "already finished" in cli(ws, "cancel", run_id).stdout


def test_dry_run_prints_the_request_and_stores_nothing(tmp_path, proj):
    ws = Workspace(tmp_path / "ws").path  # -w names an existing workspace (only `runyard init` makes one)
    out = cli(ws, "submit", "--dry-run", "-s", str(proj), "train.py", "--", "--lr", "1").stdout
    assert '"launcher": "single"' in out and '"--lr"' in out and "snapshot" in out
    assert "-u train.py --lr 1" in out.split("processes, were the run started now")[1]  # what the launcher gives
    assert Workspace(ws).metadata.count_runs() == 0
    assert not (ws / "local").exists() and not (ws / "artifacts" / "snapshots").exists()


def test_bad_input_is_one_clear_line(tmp_path, proj):
    ws = Workspace(tmp_path / "ws").path  # -w names an existing workspace (only `runyard init` makes one)
    bad = cli(ws, "submit", "-s", str(proj), "trian.py", check=False)
    assert bad.returncode == 1 and "did you mean 'train.py'" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli(ws, "submit", "-s", str(proj), "train.py", "--compute", "gpu-cluster", check=False)
    assert bad.returncode == 1 and "Known targets: local" in bad.stderr
    bad = cli(ws, "submit", "-s", str(tmp_path / "missing"), "train.py", check=False)
    assert bad.returncode == 1 and "does not exist" in bad.stderr
    assert cli(ws, "logs", "nope_1_x", check=False).returncode == 1


def test_demo(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "runyard", "demo", str(tmp_path / "demo")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "epoch 15: training accuracy" in out and "Status: Completed" in out
    assert "final_acc" in out and "outputs/model.pkl" in out
    ws = Workspace.from_config(tmp_path / "demo")
    run = ws.metadata.list_runs()[0]
    assert run.status.value == "Completed" and run.compute_target == "local"
    assert ws.get_run(run.run_id).get_metrics()["final_acc"] > 0.85
    # The closing hints work as printed (runyard is not on PATH here unless the venv is active).
    steps = out[out.index("next:"):].splitlines()[1:]
    assert steps[0].split()[0] == "cd" and any(" ui " in line and f"#/run/{run.run_id}" in line for line in steps)
    listing = next(line.strip() for line in steps if line.strip().endswith("runs list"))
    shown = subprocess.run(listing, shell=True, cwd=tmp_path / "demo", capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0 and run.run_id in shown.stdout, shown.stderr


def test_a_sqlite_workspace_submits_supervises_and_logs_without_sqlalchemy(tmp_path, proj):
    """What makes `runyard submit --wait` and a sweep's trials quick (issue 23): on a SQLite workspace the CLI, the
    run's supervisor and the script that logs never import SQLAlchemy (~0.2 s each); sqlite3 does their store calls.
    PYTHONPROFILEIMPORTTIME makes each process list its imports: the CLI's and the script's (streamed) in the output,
    the supervisor's in its own log."""
    ws = Workspace(tmp_path / "ws")
    ws.metadata.list_experiments()  # the first use creates the database (SQLAlchemy and Alembic migrate it)
    (proj / "logs.py").write_text("from runyard import Run\nrun = Run.get_context()\n"
                                  "for i in range(3):\n    run.log('loss', 1 / (i + 1))\nrun.flush()\nprint('logged')\n")
    proc = subprocess.run([sys.executable, "-m", "runyard", "-w", str(ws.path), "submit", "-s", str(proj), "logs.py",
                           "--experiment", "lean", "--wait"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "logged" in proc.stdout and "Status: Completed" in proc.stdout, output[-3000:]
    assert "runyard.cli.main" in proc.stderr and "runyard.run" in proc.stdout  # both processes listed their imports
    assert "sqlalchemy" not in output
    run = next(iter(ws.experiments["lean"].get_runs()))
    run.download_file("logs/runyard/supervisor.txt", str(tmp_path / "supervisor.txt"))
    supervisor_log = (tmp_path / "supervisor.txt").read_text()
    assert "run ends Completed" in supervisor_log and "sqlalchemy" not in supervisor_log
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1 / 3]
