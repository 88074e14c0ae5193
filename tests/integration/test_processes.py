"""Logging from real separate processes: ranks of one run, crashes, SIGTERM, exit, store outages."""
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import wait_for, run_python
from runyard import Experiment

pytestmark = pytest.mark.integration


def _env(workspace, run_id=None):
    env = workspace.environment_variables()
    if run_id:
        env["RUNYARD_RUN_ID"] = run_id
    return env


def test_get_context_in_a_child_process_logs_into_the_run(workspace):
    run = Experiment(workspace, "e").start_logging(outputs=False)
    proc = run_python(
        """
        from runyard import Run
        run = Run.get_context()
        print("ID", run.id)
        for i in range(1000):
            run.log("loss", 1.0 / (i + 1))
        run.log("name with space@1", "ok")
        run.tag("from", "child")
        """,
        env=_env(workspace, run.id),
    )
    assert f"ID {run.id}" in proc.stdout
    m = run.get_metrics()
    assert len(m["loss"]) == 1000 and m["loss"][0] == 1.0 and m["name with space@1"] == "ok"
    assert run.get_tags() == {"from": "child"}
    assert run.get_status() == "Running"  # a context run's status belongs to whoever started it


def test_ranks_of_one_run_log_at_once_without_lock_errors(workspace):
    run = Experiment(workspace, "ddp").start_logging(outputs=False)
    code = textwrap.dedent(
        """
        import os, sys
        from runyard import Run
        run = Run.get_context()
        rank = int(os.environ["RUNYARD_RANK"])
        for i in range(5000):
            run.log(f"rank{rank}", i)
            run.log("all", rank)
        """
    )
    env = {**__import__("os").environ, **_env(workspace, run.id), "RUNYARD_LOG_BATCH_SIZE": "500",
           "RUNYARD_LOG_FLUSH_INTERVAL": "0.01"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**env, "RUNYARD_RANK": str(r)},
                              stderr=subprocess.PIPE, text=True) for r in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert not any("could not write" in e or "locked" in e for e in errors), errors
    m = run.get_metrics()
    assert all(m[f"rank{r}"] == list(range(5000)) for r in range(4))
    assert len(m["all"]) == 20_000 and sorted(set(m["all"])) == [0, 1, 2, 3]


def test_a_crash_marks_the_interactive_run_failed_and_keeps_its_metrics(workspace):
    proc = run_python(
        """
        from runyard import Workspace, Experiment
        ws = Workspace.from_environment()
        run = Experiment(ws, "crash").start_logging(outputs=False)
        print("ID", run.id, flush=True)
        for i in range(100):
            run.log("loss", i)
        raise ValueError("exploded at step 100")
        """,
        env=_env(workspace), check=False,
    )
    assert proc.returncode == 1 and "exploded" in proc.stderr
    run = workspace.get_run(proc.stdout.split()[1])
    assert run.get_status() == "Failed"
    assert "ValueError: exploded at step 100" in run.get_details()["error"]["message"]
    assert run.get_metrics()["loss"] == list(range(100))


def test_leaving_without_complete_completes_the_run(workspace):
    proc = run_python(
        """
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        child = run.child_run()
        run.log("x", 1); child.log("y", 2)
        print(run.id, child.id)
        """,
        env=_env(workspace),
    )
    run_id, child_id = proc.stdout.split()
    assert workspace.get_run(run_id).get_status() == "Completed"
    assert workspace.get_run(child_id).get_status() == "Completed"
    assert workspace.get_run(child_id).get_metrics() == {"y": 2}


def test_sigterm_flushes_metrics_and_cancels_the_run(workspace):
    code = textwrap.dedent(
        """
        import time
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        for i in range(20000):
            run.log("v", i)
        print(run.id, flush=True)
        time.sleep(60)
        """
    )
    env = {**__import__("os").environ, **_env(workspace), "RUNYARD_LOG_FLUSH_INTERVAL": "30"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == -signal.SIGTERM  # still dies of SIGTERM, as the caller expects
    run = workspace.get_run(run_id)
    assert run.get_status() == "Canceled" and len(run.get_metrics()["v"]) == 20000


def test_a_sigterm_the_main_thread_missed_is_sent_to_it_again(workspace):
    # CPython runs a handler in the main thread at its next check between bytecodes. Here another thread takes the
    # SIGTERM while the main thread sleeps: the C-level handler notes it and the sleep goes on (the same state as a
    # SIGTERM arriving while the main thread waits for the GIL just before it blocks — what made the test above
    # hang now and then in CI). runyard's watcher sends it again to the main thread.
    code = textwrap.dedent(
        """
        import signal, threading, time
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        run.log("v", 1)
        def other():
            time.sleep(0.5)  # the main thread is in its sleep by now
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # this thread takes it, not the main one
            time.sleep(60)
        threading.Thread(target=other, daemon=True).start()
        print(run.id, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", code], env={**__import__("os").environ, **_env(workspace)},
                          stdout=subprocess.PIPE, text=True) as proc:
        run_id = proc.stdout.readline().strip()
        started = time.monotonic()
        try:
            assert proc.wait(timeout=30) == -signal.SIGTERM
        finally:
            proc.kill()
        assert time.monotonic() - started < 10  # not the 60 s of the sleep
    run = workspace.get_run(run_id)
    assert run.get_status() == "Canceled" and run.get_metrics() == {"v": 1}


def test_a_forked_child_s_sigterm_stays_in_the_child(workspace):
    # The wakeup fd is shared with a forked child (a data-loader worker): its SIGTERM must not reach the parent.
    proc = run_python(
        """
        import os, signal, time
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        run.log("v", 1)
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        time.sleep(1)  # longer than the watcher's patience
        run.log("v", 2)
        print(run.id, os.waitstatus_to_exitcode(status), flush=True)
        """,
        env=_env(workspace), timeout=60,
    )
    run_id, child_code = proc.stdout.split()
    assert child_code == str(-signal.SIGTERM)
    run = workspace.get_run(run_id)
    assert run.get_status() == "Completed" and run.get_metrics() == {"v": [1, 2]}


def test_store_outage_is_retried_and_never_reaches_the_script(workspace):
    proc = run_python(
        """
        from runyard import Workspace, Experiment
        from runyard.errors import StoreError
        ws = Workspace.from_environment()
        run = Experiment(ws, "e").start_logging(outputs=False)
        real = ws.metadata.log_batch
        calls = {"n": 0}
        def flaky(*a, **k):
            calls["n"] += 1
            if calls["n"] <= 3:
                raise StoreError("database is down (injected)")
            return real(*a, **k)
        ws.metadata.log_batch = flaky
        for i in range(1000):
            run.log("v", i)
        run.complete()
        print(run.id, calls["n"])
        """,
        env={**_env(workspace), "RUNYARD_LOG_FLUSH_INTERVAL": "0.05"},
    )
    run_id, calls = proc.stdout.split()
    assert int(calls) >= 4
    assert "could not write" in proc.stderr and "recovered" in proc.stderr
    assert workspace.get_run(run_id).get_metrics()["v"] == list(range(1000))


OUTAGE = """
    from runyard import Workspace, Experiment, Run
    from runyard.errors import StoreError
    import runyard.context.logger as lg
    ws = Workspace.from_environment()
    run = Experiment(ws, "e").start_logging(outputs=False)
    def down(*a, **k):
        raise StoreError("database is down (injected)")
    ws.metadata.log_batch = down
    if {no_journal}:
        ws.logger.journal_dir = None  # e.g. a read-only workspace folder
    for i in range(500):
        run.log("v", i)
    lg.close_all(timeout=1)   # what atexit does, with a short timeout
    print(run.id)
    import os; os._exit(0)    # skip the normal exit: the run stays as the outage left it
"""


def test_values_that_cannot_be_stored_wait_in_the_journal(workspace):
    proc = run_python(OUTAGE.format(no_journal=False), env=_env(workspace))
    run_id = proc.stdout.split()[0]
    assert "wait in the metric journal" in proc.stderr
    assert not list((workspace.path / "spool").glob("metrics-*.jsonl"))
    assert len(list(workspace.journal_dir.glob("*.journal"))) == 1
    workspace.replay_journals()  # what the next opener of the workspace does (opening this one may do it first)
    assert workspace.get_run(run_id).get_metrics()["v"] == list(range(500))
    assert not list(workspace.journal_dir.glob("*.journal"))


def test_values_that_cannot_be_stored_without_a_journal_are_spooled_then_synced(workspace):
    proc = run_python(OUTAGE.format(no_journal=True), env=_env(workspace))
    run_id = proc.stdout.split()[0]
    assert "saved to" in proc.stderr and "runyard sync" in proc.stderr
    spooled = list((workspace.path / "spool").glob("metrics-*.jsonl"))
    assert len(spooled) == 1 and workspace.get_run(run_id).get_metrics() == {}
    from runyard.context.logger import replay_spool

    assert replay_spool(workspace.metadata, workspace.path / "spool") == (1, 500)
    assert workspace.get_run(run_id).get_metrics()["v"] == list(range(500))
    assert not list((workspace.path / "spool").glob("*.jsonl"))


def test_processes_creating_one_experiment_at_once_get_the_same_one(workspace):
    code = textwrap.dedent(
        """
        from runyard import Workspace, Experiment
        print(Experiment(Workspace.from_environment(), "race").id)
        """
    )
    env = {**__import__("os").environ, **_env(workspace)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert len({o[0].strip() for o in outs}) == 1
    assert [e for e in workspace.experiments] == ["race"]


def test_a_fresh_database_opened_by_many_processes_at_once(tmp_path):
    code = textwrap.dedent(
        f"""
        from runyard import Workspace, Experiment
        ws = Workspace({str(tmp_path / "fresh")!r})
        Experiment(ws, "e").start_logging(outputs=False).complete()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(5)]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    from runyard import Workspace
    from runyard.store.metadata.migrations_runner import current_revision, head_revision

    ws = Workspace(tmp_path / "fresh")
    assert current_revision(ws.metadata.engine) == head_revision()
    assert len(list(Experiment(ws, "e").get_runs())) == 5


def test_a_killed_process_leaves_no_run_running_forever(workspace, monkeypatch):
    code = textwrap.dedent(
        """
        import time
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        child = run.child_run()
        print(run.id, child.id, flush=True)
        time.sleep(60)
        """
    )
    env = {**__import__("os").environ, **_env(workspace), "RUNYARD_HEARTBEAT_INTERVAL": "0.2"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    run_id, child_id = proc.stdout.readline().split()
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "1.5")
    time.sleep(2)
    workspace.metadata._last_reap = float("-inf")
    assert workspace.get_run(run_id).get_status() == "Running"  # alive: its heartbeat is fresh
    proc.kill()  # SIGKILL: no atexit, no signal handler
    proc.wait()

    def reaped() -> bool:
        workspace.metadata._last_reap = float("-inf")  # the reaper runs at most every few seconds per process
        return workspace.get_run(run_id).get_status() == "Failed"

    wait_for(reaped, 30, "the run whose process died to be failed")
    run = workspace.get_run(run_id)
    assert run.get_details()["error"]["code"] == "HeartbeatLost"
    assert workspace.get_run(child_id).get_status() == "Failed"
    assert run.get_details()["endTimeUtc"] is not None


def test_runs_that_never_heartbeat_are_not_reaped(workspace, monkeypatch):
    exp = Experiment(workspace, "e")
    info = workspace.metadata.create_run(exp.id, status="Running")  # e.g. a queued/submitted run, no driver yet
    monkeypatch.setenv("RUNYARD_HEARTBEAT_TIMEOUT", "0")
    workspace.metadata._last_reap = float("-inf")
    assert workspace.metadata.fail_stale_runs(0) == []
    assert workspace.get_run(info.run_id).get_status() == "Running"


def test_forked_children_log_through_the_parents_run_object(workspace):
    """multiprocessing's fork (DataLoader workers, pools): the child gets its own logger thread and connections."""
    proc = run_python(
        """
        import multiprocessing as mp
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "fork").start_logging(outputs=False)
        run.log("parent", 1)          # the parent's logger thread and pool exist before the fork

        def work(rank):
            for i in range(300):
                run.log(f"worker{rank}", i)
            run.flush()

        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=work, args=(r,)) for r in range(3)]
        for p in procs: p.start()
        for p in procs: p.join()
        assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
        run.complete()
        print(run.id)
        """,
        env=_env(workspace),
    )
    run = workspace.get_run(proc.stdout.split()[-1])
    m = run.get_metrics()
    assert m["parent"] == 1 and all(m[f"worker{r}"] == list(range(300)) for r in range(3))
    assert run.get_status() == "Completed"  # a forked child does not finish its parent's runs


def test_sigterm_chains_to_the_scripts_own_handler(workspace):
    code = textwrap.dedent(
        """
        import signal, sys, time
        def mine(signum, frame):
            print("MY HANDLER", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, mine)
        from runyard import Workspace, Experiment
        run = Experiment(Workspace.from_environment(), "e").start_logging(outputs=False)
        run.log("v", 1)
        print(run.id, flush=True)
        time.sleep(60)
        """
    )
    env = {**__import__("os").environ, **_env(workspace)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "MY HANDLER" in out
    run = workspace.get_run(run_id)
    assert run.get_status() == "Canceled" and run.get_metrics() == {"v": 1}
