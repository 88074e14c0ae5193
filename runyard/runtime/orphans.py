"""What a run leaves when its supervisor dies (``kill -9``, an OOM kill, a crashed machine coming back).

The ranks die with their supervisor (PDEATHSIG), but what they started — a ``subprocess.Popen`` child, a
double-forked daemon, a data-loader worker — is re-parented to init and goes on. Every process of a run carries
``RUNYARD_RUN_ID`` in its environment (inherited down the tree, also by processes that left the session), so
whoever fails the run for its lost heartbeat on this machine (``plugins.STALE_RUNS``: the store's reaper, in
whatever runyard process reads the store next) finds them by it and stops them, then uploads what the working
copy holds — ``outputs/``, the captured logs, the supervisor's log — and stores what the processes' metric
journals hold.

Each supervisor registers its run folder here while it runs (a symlink in a per-user folder on this machine), so
the clean-up finds the working copy from the run id alone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from runyard import env_vars
from runyard.runtime.logfiles import SUPERVISOR_LOG
from runyard.runtime.request import read_request
from runyard.status import RunStatus
from runyard.store import run_files
from runyard.store.workspace_context import WorkspaceContext

_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for a dead run's leftovers


def index_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"runyard-{os.getuid()}" / "runs"


def register(run_id: str, run_dir: Path) -> None:
    folder = index_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    link = folder / run_id
    link.unlink(missing_ok=True)
    link.symlink_to(run_dir.absolute())


def unregister(run_id: str) -> None:
    (index_dir() / run_id).unlink(missing_ok=True)


def alive(run_ids: list[str]) -> list[str]:
    """The runs among ``run_ids`` whose supervisor lives on this machine (not heartbeating is an outage, not death)."""
    found = []
    for run_id in run_ids:
        link = index_dir() / run_id
        if link.is_symlink() and supervisor_pid(Path(os.path.realpath(link))) is not None:
            found.append(run_id)
    return found


def clean_up(run_ids: list[str]) -> None:
    """Stop the leftovers of runs just failed for a lost heartbeat and keep what their working copies hold."""
    for run_id in run_ids:
        link = index_dir() / run_id
        run_dir = Path(os.path.realpath(link)) if link.is_symlink() else None
        if run_dir is not None and supervisor_pid(run_dir) is not None:
            continue  # a supervisor that only could not write its heartbeat: it ends the run itself
        stop_leftovers(run_id)
        if run_dir is not None and run_dir.is_dir():
            salvage(run_id, run_dir)
        link.unlink(missing_ok=True)


def stop_leftovers(run_id: str, grace: float = _GRACE) -> list[int]:
    """SIGTERM every process on this machine whose environment says it belongs to ``run_id``, SIGKILL what is left
    after ``grace`` seconds; return their pids."""
    import psutil

    marker = f"{env_vars.RUN_ID}={run_id}".encode()
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.append(proc)
        except OSError:  # gone, or another user's
            continue
    for proc in found:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(found, timeout=grace)
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=2.0)
    return [p.pid for p in found]


def salvage(run_id: str, run_dir: Path) -> None:
    """Upload the working copy's ``outputs/`` and ``logs/``, the captured output and the supervisor's log, store the
    metric journals of the run's dead processes, record the outcome the supervisor left (if it did), then remove
    the folder."""
    request = read_request(run_dir)
    ws = WorkspaceContext.from_ref(request.workspace)
    ws.replay_journals()
    workdir = Path(getattr(request, "workdir", None) or run_dir / "wd")
    notes = []
    items = []
    for name, base in (("outputs", workdir / "outputs"), ("logs", run_dir / "logs"), ("logs", workdir / "logs")):
        if base.is_dir():
            items += run_files.folder_items(name, base, notes.append)
    log = run_dir / "supervisor.txt"
    if log.is_file():
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"the supervisor died; its leftovers were stopped and its files uploaded by pid {os.getpid()}\n")
            out.writelines(f"{note}\n" for note in notes)
        items.append((SUPERVISOR_LOG, log))
    if items:
        run_files.put(ws, run_id, items, show_progress=False)
    outcome = run_dir / OUTCOME_FILE
    if outcome.is_file():  # the supervisor ended the run but could not record how: that, not the lost heartbeat
        decided = json.loads(outcome.read_text(encoding="utf-8"))
        ws.metadata.set_status(run_id, RunStatus(decided["status"]), error=decided["error"],
                               exit_code=decided["exit_code"])
    shutil.rmtree(run_dir, ignore_errors=True)


OUTCOME_FILE = "outcome.json"


def write_outcome(run_dir: Path, status, error: dict | None, exit_code: int | None) -> None:
    """What a supervisor that could not reach the store decided (salvage records it)."""
    (run_dir / OUTCOME_FILE).write_text(json.dumps({"status": status.value, "error": error, "exit_code": exit_code},
                                                   default=str), encoding="utf-8")


def supervisor_pid(run_dir: Path) -> int | None:
    """The pid of the live supervisor of the run in ``run_dir`` on this machine (not a reused pid, not a zombie)."""
    import psutil

    try:
        pid, started = (run_dir / "supervisor.pid").read_text().split()
        proc = psutil.Process(int(pid))
        alive = abs(proc.create_time() - float(started)) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, psutil.Error):
        return None
    return proc.pid if alive else None


def _signal(proc, sig: int) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass
