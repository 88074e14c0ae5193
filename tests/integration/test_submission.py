"""Submitted runs on the local target: detached supervisors, failures of every kind, limits, the queue."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import run_python, wait_for
from runyard import ComputeError, Experiment, NotFound, RunFailed, ScriptRunConfig, Workspace
from runyard.compute import get_target
from runyard.train.estimator import Estimator

pytestmark = pytest.mark.integration


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "job.py").write_text(textwrap.dedent("""
        import ctypes, os, subprocess, sys, time
        os.makedirs("outputs", exist_ok=True)
        open("outputs/started.txt", "w").write(str(os.getpid()))
        mode = sys.argv[1]
        print("mode", mode, flush=True)
        if mode == "segv":
            ctypes.string_at(0)
        elif mode == "tree":                     # a child and a double-forked grandchild that outlive us
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    open("outputs/daemon.pid", "w").write(str(os.getpid())); time.sleep(600)
                os._exit(0)
            open("outputs/child.pid", "w").write(str(child.pid))
            time.sleep(600)
        elif mode == "spam":                     # 1 GB of output
            chunk = (b"y" * 1023 + b"\\n") * 1024
            for _ in range(1024):
                sys.stdout.buffer.write(chunk)
            print("spam done")
        elif mode == "sleep":
            time.sleep(float(sys.argv[2]))
        elif mode == "kill-self":
            os.kill(os.getpid(), 9)
    """))
    return root


def submit(ws, project, *args, **kw):
    return Experiment(ws, "sub").submit(ScriptRunConfig(source_directory=project, script="job.py", arguments=list(args), **kw))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_run_survives_the_submitting_process(ws, project):
    code = f"""
        from runyard import Workspace, Experiment, ScriptRunConfig
        ws = Workspace({str(ws.path)!r})
        run = Experiment(ws, "sub").submit(ScriptRunConfig(source_directory={str(project)!r}, script="job.py",
                                                           arguments=["sleep", "1.5"]))
        print(run.id)
    """
    started = time.monotonic()
    run_id = run_python(code).stdout.strip().splitlines()[-1]
    assert time.monotonic() - started < 5  # submit returned long before the run ended
    run = ws.get_run(run_id)
    assert run.get_status() != "Completed"
    assert run.wait_for_completion()["status"] == "Completed"


def test_segfault_and_signals_are_recorded(ws, project):
    run = submit(ws, project, "segv")
    with pytest.raises(RunFailed, match=r"killed by SIGSEGV \(segmentation fault\)"):
        run.wait_for_completion()
    info = ws.metadata.get_run(run.id)
    assert info.exit_code == -signal.SIGSEGV and info.error["signal"] == signal.SIGSEGV
    assert "outputs/started.txt" in run.get_file_names()
    run = submit(ws, project, "kill-self")
    with pytest.raises(RunFailed, match="killed by SIGKILL"):
        run.wait_for_completion()


def test_max_run_duration_stops_the_run(ws, project):
    run = submit(ws, project, "sleep", "600", max_run_duration_seconds=1)
    started = time.monotonic()
    with pytest.raises(RunFailed, match="exceeded max_run_duration_seconds=1"):
        run.wait_for_completion()
    assert time.monotonic() - started < 10
    assert ws.metadata.get_run(run.id).error["code"] == "RunTimeout"


def test_cancel_kills_the_whole_tree_within_5_seconds(ws, project, tmp_path):
    run = submit(ws, project, "tree")
    deadline = time.monotonic() + 30
    target = get_target(ws, "local")
    wd = target.run_dir(run.id) / "wd" / "outputs"
    while not ((wd / "child.pid").exists() and (wd / "daemon.pid").exists()):
        assert time.monotonic() < deadline, "the script did not start its processes"
        time.sleep(0.05)
    time.sleep(0.1)
    pids = [int((wd / name).read_text()) for name in ("started.txt", "child.pid", "daemon.pid")]
    assert not any(_gone(p) for p in pids)
    started = time.monotonic()
    run.cancel()
    assert time.monotonic() - started < 5
    assert run.get_status() == "Canceled"
    assert all(_gone(p) for p in pids), [p for p in pids if not _gone(p)]
    run.cancel()  # idempotent
    assert run.get_status() == "Canceled"


def test_killed_supervisor_is_failed_by_the_next_reader(tmp_path, project, monkeypatch):
    monkeypatch.setenv("RUNYARD_HEARTBEAT_INTERVAL", "0.2")
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "1")
    ws = Workspace(tmp_path / "ws")
    run = submit(ws, project, "sleep", "600")
    target = get_target(ws, "local")
    started = target.run_dir(run.id) / "wd" / "outputs" / "started.txt"
    while run.get_status() != "Running" or not started.exists() or not started.read_text():
        time.sleep(0.05)
    script_pid = int(started.read_text())
    os.kill(target.supervisor_pid(run.id), signal.SIGKILL)
    deadline = time.monotonic() + 15
    while run.get_status() == "Running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    info = ws.metadata.get_run(run.id)
    assert info.status.value == "Failed" and info.error["code"] == "HeartbeatLost"
    wait_for(lambda: _gone(script_pid), 10, "the script to end with its supervisor")  # it does not run on unsupervised


def test_a_gigabyte_of_output_is_capped_and_the_run_finishes(ws, project, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOG_MAX_MB", "4")
    monkeypatch.setenv("RUNYARD_LOG_SYNC_SECONDS", "0.01")  # live log copies race with ~250 rotations
    run = submit(ws, project, "spam")
    assert run.wait_for_completion()["status"] == "Completed"
    logs = {a.path: a.size for a in ws.metadata.list_artifacts(run.id, "logs") if "user_log" in a.path}
    assert set(logs) == {"logs/user_log_0.txt", "logs/user_log_0.1.txt", "logs/user_log_0.2.txt"}
    assert sum(logs.values()) <= 12 * (1 << 20)
    assert "".join(get_target(ws, "local").log_iter(run.id)).endswith("spam done\n")


def test_queue_runs_in_order_within_capacity(ws, project, monkeypatch, capsys):
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "1")
    # The first holds the one slot long enough for the others to be seen waiting, however slow the machine.
    runs = [submit(ws, project, "sleep", seconds) for seconds in ("3", "0.3", "0.3")]
    wait_for(lambda: runs[0].get_status() != "Queued", 60, "the first run to take the slot")
    statuses = [r.get_status() for r in runs]
    assert statuses.count("Queued") >= 2, statuses
    assert get_target(ws, "local").describe(runs[2].id).details["queue_position"] in (0, 1)
    runs[2].wait_for_completion(show_output=True)
    assert "Queued on local: " in capsys.readouterr().out
    for r in runs:
        r.wait_for_completion()
    infos = [ws.metadata.get_run(r.id) for r in runs]
    for earlier, later in zip(infos, infos[1:]):
        assert earlier.end_time <= later.start_time + 0.05  # one at a time, in submission order


def test_cancel_while_queued_never_starts(ws, project, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "1")
    first = submit(ws, project, "sleep", "600")
    queued = submit(ws, project, "sleep", "0")
    wait_for(lambda: first.get_status() == "Running", 60, "the first run to start")
    assert queued.get_status() == "Queued"
    queued.cancel()
    assert queued.get_status() == "Canceled" and queued.get_details()["startTimeUtc"] is None
    first.cancel()
    assert "outputs/started.txt" not in queued.get_file_names()


def test_wait_for_completion_streams_output(ws, project, capsys):
    run = Experiment(ws, "sub").submit(Estimator(project, entry_script="job.py", script_params={"sleep": 0.2}))
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert f"RunId: {run.id}" in out and "mode --sleep" in out and "Status: Completed" in out


def test_restore_snapshot_and_all_logs(ws, project, tmp_path):
    run = submit(ws, project, "sleep", "0")
    run.wait_for_completion()
    restored = run.restore_snapshot(tmp_path / "restored")
    assert (tmp_path / "restored" / "job.py").read_text() == (project / "job.py").read_text() and restored
    paths = run.get_all_logs(tmp_path / "all-logs")
    assert any(p.endswith("user_log_0.txt") for p in paths)


def test_gpu_request_without_a_gpu_stores_nothing_when_a_gpu_is_required(ws, project, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("RUNYARD_REQUIRE_GPU", "1")
    with pytest.raises(ComputeError, match="use_gpu=True but this machine has no GPU"):
        Experiment(ws, "gpu").submit(Estimator(project, entry_script="job.py", use_gpu=True))
    assert ws.metadata.count_runs() == 0


def test_bad_spec_stores_nothing(ws, project):
    misspelled = ScriptRunConfig(source_directory=project, script="jbo.py")
    with pytest.raises(NotFound, match="did you mean 'job.py'"):
        Experiment(ws, "bad").submit(misspelled)
    assert ws.metadata.count_runs() == 0 and not (ws.path / "local").exists()


def test_script_completing_its_own_run_is_still_supervised(ws, tmp_path):
    proj = tmp_path / "own"
    proj.mkdir()
    (proj / "t.py").write_text("from runyard import Run\nr = Run.get_context()\nr.log('a', 1)\nr.complete()\n"
                               "import time; time.sleep(0.5)\nopen('outputs/late.txt','w').write('x')\n")
    run = Experiment(ws, "own").submit(ScriptRunConfig(source_directory=proj, script="t.py"))
    assert run.wait_for_completion()["status"] == "Completed"
    assert "outputs/late.txt" in run.get_file_names() and run.get_metrics() == {"a": 1}


@pytest.mark.parametrize("extra_thread,expected", [(False, "forked from the submitter"), (True, "spawned")])
def test_supervisor_is_forked_only_from_a_single_threaded_process(ws, project, extra_thread, expected):
    code = f"""
        import threading, time
        from runyard import Workspace, Experiment, ScriptRunConfig
        if {extra_thread}:
            threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
        ws = Workspace({str(ws.path)!r})
        run = Experiment(ws, "sub").submit(ScriptRunConfig(source_directory={str(project)!r}, script="job.py",
                                                           arguments=["sleep", "0"]))
        run.wait_for_completion()
        print(run.id)
    """
    run_id = run_python(code).stdout.strip().splitlines()[-1]
    run = ws.get_run(run_id)
    assert run.get_status() == "Completed"
    run.download_file("logs/runyard/supervisor.txt", "supervisor.txt")
    assert expected in open("supervisor.txt").read()


def test_forked_supervisor_records_a_cancel_from_another_process(ws, project):
    """A forked supervisor must not inherit the submitter's SQLite connections: its writes were lost when it did."""
    for _ in range(3):
        code = f"""
            from runyard import Workspace, Experiment, ScriptRunConfig
            ws = Workspace({str(ws.path)!r})
            print(Experiment(ws, "sub").submit(ScriptRunConfig(source_directory={str(project)!r}, script="job.py",
                                                               arguments=["sleep", "600"])).id)
        """
        run = ws.get_run(run_python(code).stdout.strip().splitlines()[-1])
        while run.get_status() != "Running":
            time.sleep(0.05)
        run_python(f"""
            from runyard import Workspace
            Workspace({str(ws.path)!r}).get_run({run.id!r}).cancel()
        """)
        assert run.get_status() == "Canceled"


def test_logs_reach_the_run_history_while_it_runs(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOG_SYNC_SECONDS", "0.2")
    proj = tmp_path / "live"
    proj.mkdir()
    (proj / "t.py").write_text("import time\nprint('early line', flush=True)\nopen('logs/mine.txt','w').write('x')\n"
                               "time.sleep(30)\n")
    run = Experiment(ws, "live").submit(ScriptRunConfig(source_directory=proj, script="t.py"))
    deadline = time.monotonic() + 20
    while "logs/mine.txt" not in run.get_file_names():
        assert time.monotonic() < deadline, run.get_file_names()
        time.sleep(0.1)
    assert run.get_status() == "Running"
    path = run.download_file("logs/user_log_0.txt", tmp_path / "early.txt")
    assert "early line" in open(path).read()
    run.cancel()


@pytest.mark.parametrize("first", ["", "run.log('x', 1)\n"], ids=["forked", "spawned"])
def test_runs_submitted_by_a_run_outlive_it(ws, tmp_path, first):
    # A driver with threads (logging started the metric writer) spawns the supervisor instead of forking it: the
    # driver exits before that supervisor has its name, and the outer run's clean-up must still spare it.
    proj = tmp_path / "pipeline"
    proj.mkdir()
    (proj / "step.py").write_text("import time\ntime.sleep(1.5)\nprint('step done')\n")
    (proj / "driver.py").write_text(
        "from runyard import Run, ScriptRunConfig\n"
        "run = Run.get_context()\n"
        + first +
        "child = run.experiment.submit(ScriptRunConfig(source_directory='.', script='step.py'))\n"
        "print(child.id, flush=True)\n")
    outer = Experiment(ws, "pipeline").submit(ScriptRunConfig(source_directory=proj, script="driver.py"))
    assert outer.wait_for_completion()["status"] == "Completed"
    inner_id = "".join(get_target(ws, "local").log_iter(outer.id)).split()[0]
    inner = ws.get_run(inner_id)
    assert inner.get_status() != "Canceled"
    assert inner.wait_for_completion()["status"] == "Completed"
    assert "step done" in "".join(get_target(ws, "local").log_iter(inner_id))


def test_a_supervisor_that_cannot_start_fails_the_run_at_once(ws):
    run_dir = get_target(ws, "local").run_dir("sub_1_broken")
    run_dir.mkdir(parents=True)
    (run_dir / "request.json").write_text(json.dumps({
        "run_id": "sub_1_broken", "workspace": {"path": str(ws.path), "tracking_uri": ws.tracking_uri,
                                                "artifact_uri": ws.artifact_uri}}))
    info = ws.metadata.create_run(Experiment(ws, "sub").id, run_id="sub_1_broken", status="Queued")
    proc = subprocess.run([sys.executable, "-m", "runyard.runtime.supervisor", str(run_dir)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "the run request is incomplete" in proc.stderr
    failed = ws.metadata.get_run(info.run_id)
    assert failed.status.value == "Failed" and failed.error["code"] == "SupervisorError"
    assert "ConfigError: the run request is incomplete: it has no target, run, job" in failed.error["message"]


def test_live_log_reads_rotated_parts_in_order(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("RUNYARD_LOG_MAX_MB", "0.002")  # ~2 KB per part
    proj = tmp_path / "rot"
    proj.mkdir()
    (proj / "t.py").write_text("import time\nfor i in range(400):\n    print(f'line {i:04d}')\n"
                               "print('all printed', flush=True)\ntime.sleep(30)\n")
    run = Experiment(ws, "rot").submit(ScriptRunConfig(source_directory=proj, script="t.py"))
    target = get_target(ws, "local")
    deadline = time.monotonic() + 20
    while "all printed" not in (text := "".join(target.log_iter(run.id))):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    while run.get_status() != "Running":  # statuses are recorded just after the fact (the store opens in a thread)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = text.splitlines()
    numbers = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert numbers == sorted(numbers) and numbers[-1] == 399 and len(numbers) > 150  # two kept parts, in order
    run.cancel()


RENDEZVOUS = """
import os, socket, sys, time
port, rank = int(os.environ["MASTER_PORT"]), int(os.environ["RANK"])
print("MASTER_PORT", port, "rank", rank, "of", os.environ["WORLD_SIZE"], flush=True)
if rank == 0:  # torch's TCPStore: rank 0 listens on MASTER_PORT, every other rank connects to it
    server = socket.socket()
    server.bind((os.environ["MASTER_ADDR"], port))
    server.listen()
    conn, _ = server.accept()
    print("rank 0 got", conn.recv(16).decode(), flush=True)
else:
    for _ in range(400):
        try:
            conn = socket.create_connection((os.environ["MASTER_ADDR"], port), timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    conn.sendall(b"hello from 1")
"""


def test_a_queued_ddp_run_rendezvouses_on_ports_picked_when_it_starts(ws, tmp_path, monkeypatch):
    """The launcher is asked when the run gets its slot: ports chosen at submit time may be taken by then."""
    import socket

    from runyard import PyTorchConfiguration
    from runyard.runtime.resources import free_ports

    monkeypatch.setenv("RUNYARD_LOCAL_MAX_RUNS", "1")
    proj = tmp_path / "ddp"
    proj.mkdir()
    (proj / "ddp.py").write_text(RENDEZVOUS)
    (proj / "hold.py").write_text("import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n")
    release = tmp_path / "release"
    exp = Experiment(ws, "ddp")
    long = exp.submit(ScriptRunConfig(str(proj), "hold.py", arguments=[str(release)]))
    ddp = exp.submit(ScriptRunConfig(str(proj), "ddp.py", distributed_job_config=PyTorchConfiguration(process_count=2)))
    deadline = time.monotonic() + 30
    while long.get_status() != "Running":
        assert time.monotonic() < deadline, long.get_details()
        time.sleep(0.05)
    assert ddp.get_status() == "Queued"
    # Another process takes the ports a submit-time launcher would have handed out: any the queued run's request
    # names, and the port the OS gives now (what a dryrun picks).
    request = (get_target(ws, "local").run_dir(ddp.id) / "request.json").read_text()
    named = {int(p) for p in __import__("re").findall(r'"MASTER_PORT": "(\d+)"', request)}
    squatters = []
    for port in {*named, *free_ports(1)}:
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        sock.listen()
        squatters.append(sock)
    taken = {s.getsockname()[1] for s in squatters}
    try:
        release.touch()
        assert long.wait_for_completion()["status"] == "Completed"
        details = ddp.wait_for_completion(raise_on_error=False)
        assert details["status"] == "Completed", details.get("error")
        out = "".join(get_target(ws, "local").log_iter(ddp.id, 0))
        assert "rank 0 got hello from 1" in out
        used = int(out.split("MASTER_PORT")[1].split()[0])
        assert used not in taken and named == set()  # the request names no port: they are picked at start
    finally:
        for sock in squatters:
            sock.close()
