"""Metrics survive the hard death of the process that logged them: SIGKILL, SIGSEGV, os._exit, at any moment."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.compute import get_target
from runyard.status import RunStatus

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

N = 5000

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from runyard import Run
    run = Run.get_context()
    how = sys.argv[1]
    for i in range(%d):
        run.log("loss", i * 0.5)
    run.log("epochs", 7)
    run.log("note", "last words")
    run.log_row("table", a=1, b="x")
    if how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == "exit":
        os._exit(3)
    elif how == "outside":       # the test kills it with SIGKILL once it says it logged everything
        open("logged", "w").write(str(os.getpid()))
        time.sleep(600)
""" % N)


def _expect_all(metrics: dict) -> None:
    assert metrics["loss"] == [i * 0.5 for i in range(N)]  # every value, once, in order
    assert metrics["epochs"] == 7 and metrics["note"] == "last words"
    assert metrics["table"] == {"a": [1], "b": ["x"]}


@pytest.mark.parametrize("how", ["segv", "exit", "outside"])
def test_supervised_run_keeps_every_value(workspace, tmp_path, how):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "crash.py").write_text(SCRIPT)
    run = Experiment(workspace, "crash").submit(ScriptRunConfig(source_directory=project, script="crash.py",
                                                                arguments=[how]))
    if how == "outside":
        said = get_target(workspace, "local").run_dir(run.id) / "wd" / "logged"
        wait_for(said.exists, 60, "the script to say it logged everything")
        os.kill(int(said.read_text()), signal.SIGKILL)
    run.wait_for_completion(raise_on_error=False)
    assert run.get_status() == RunStatus.FAILED.value
    _expect_all(run.get_metrics())
    assert not any(workspace.journal_dir.glob("*.journal"))  # replayed by the supervisor, then deleted


@pytest.mark.parametrize("how", ["segv", "exit", "outside"])
def test_unsupervised_run_is_replayed_by_the_next_reader(workspace, tmp_path, how):
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from runyard import Workspace, Experiment
        ws = Workspace({str(workspace.path)!r}, tracking_uri={workspace.tracking_uri!r})
        run = Experiment(ws, "nb").start_logging(outputs=False)
        print(run.id, flush=True)
    """) + SCRIPT.replace("run = Run.get_context()", "pass  # the run started above"))
    proc = subprocess.Popen([sys.executable, str(script), how], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    if how == "outside":
        wait_for((tmp_path / "logged").exists, 60, "the script to say it logged everything")
        proc.kill()
    proc.wait(60)
    assert proc.returncode != 0
    assert list(workspace.journal_dir.glob("*.journal"))  # what the dead process left
    reader = Workspace(workspace.path, tracking_uri=workspace.tracking_uri)  # a fresh opener replays it
    reader.__dict__.pop("metadata", None)
    from runyard.store.workspace_context import _replay_journals

    _replay_journals(reader.metadata, reader.journal_dir)
    _expect_all(reader.get_run(run_id).get_metrics())
    assert not list(workspace.journal_dir.glob("*.journal"))
    # Replaying again (a second reader, a crash half-way through a replay) stores nothing twice.
    _replay_journals(reader.metadata, reader.journal_dir)
    _expect_all(reader.get_run(run_id).get_metrics())


def test_a_journal_replayed_twice_stores_each_value_once(workspace, tmp_path):
    """A replay that died after storing part of a journal (its mark moved with each stored batch) is finished by the
    next one without storing anything twice."""
    from runyard.store import journal
    from runyard.store.metadata import MetricRecord

    run = Experiment(workspace, "j").start_logging(outputs=False)
    folder = tmp_path / "journals"
    j = journal.Journal(folder)
    for i in range(120_000):
        j.append(MetricRecord(run.id, "v", float(i), i, time.time(), "scalar"))
    j.append(MetricRecord(run.id, "big", 2**70, 0, time.time(), "scalar"))  # an int beyond 64 bits: a JSON record
    records = journal.read(j.path)
    assert len(records) == 120_001 and records[-1].value == 2**70
    workspace.metadata.log_batch(metrics=records[:70_000], journal=(j.name, 0))  # a replay that stopped half-way
    j.abandon()  # the process "dies": its lock goes
    assert journal.replay(workspace.metadata, folder) == (1, 120_001)
    values = run.get_metrics()["v"]
    assert values == [float(i) for i in range(120_000)]
    assert run.get_metrics()["big"] == 2**70
