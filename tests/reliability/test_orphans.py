"""Nothing orphaned (issue 21 §5): when a run's supervisor is killed -9, whoever fails the run for its lost heartbeat
stops everything the run started on this machine and uploads what its working copy holds."""
from __future__ import annotations

import os
import signal
import textwrap

import psutil
import pytest

from conftest import wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.compute import get_target
from runyard.runtime import orphans

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

TREE = textwrap.dedent("""
    import os, subprocess, sys, time
    from runyard import Run
    run = Run.get_context()
    os.makedirs("outputs", exist_ok=True)
    child = subprocess.Popen(["sleep", "600"])              # a grandchild of the supervisor, same session
    if os.fork() == 0:                                      # a daemon that left the session
        os.setsid()
        if os.fork() == 0:
            open("outputs/daemon.pid", "w").write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    open("outputs/child.pid", "w").write(str(child.pid))
    open("outputs/model.txt", "w").write("weights so far")
    for i in range(300):
        run.log("loss", 1.0 / (i + 1))
    print("all started", flush=True)
    time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_supervisors_run_leaves_nothing_running_and_keeps_its_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "1.5")
    ws = Workspace(tmp_path / "ws")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "tree.py").write_text(TREE)
    run = Experiment(ws, "orphans").submit(ScriptRunConfig(str(project), "tree.py"))
    target = get_target(ws, "local")
    outputs = target.run_dir(run.id) / "wd" / "outputs"
    wait_for(lambda: (outputs / "daemon.pid").exists() and (outputs / "model.txt").exists(), 60, "the script's tree")
    wait_for(lambda: "all started" in "".join(target.log_iter(run.id)), 60, "the script to log its metrics")
    pids = [int((outputs / name).read_text()) for name in ("child.pid", "daemon.pid")]
    assert all(_alive(p) for p in pids)
    assert (orphans.index_dir() / run.id).is_symlink()  # the supervisor registered its folder
    os.kill(target.supervisor_pid(run.id), signal.SIGKILL)

    def failed() -> bool:
        ws.metadata._last_reap = float("-inf")  # the reaper runs at most every few seconds per process
        return run.get_status() == "Failed"

    wait_for(failed, 30, "a reader to fail the run for its lost heartbeat")
    assert ws.metadata.get_run(run.id).error["code"] == "HeartbeatLost"
    wait_for(lambda: not any(_alive(p) for p in pids), 15, "the run's leftovers to be stopped")
    names = run.get_file_names()
    assert {"outputs/model.txt", "outputs/child.pid", "outputs/daemon.pid", "logs/user_log_0.txt",
            "logs/runyard/supervisor.txt"} <= set(names), names
    assert len(run.get_metrics()["loss"]) == 300  # the script's journal, stored by the clean-up
    assert not target.run_dir(run.id).exists() and not (orphans.index_dir() / run.id).exists()
