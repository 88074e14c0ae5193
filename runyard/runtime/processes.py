"""Starting a run's processes with their output captured, and stopping the whole tree they grow.

The supervisor makes itself a *child subreaper* (Linux): processes its children leave behind — a
double-forked daemon, a data-loader worker whose parent died — are re-parented to the supervisor instead of
init, so stopping "every descendant of the supervisor" really stops everything the run started.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from runyard.runtime.logfiles import RotatingLog

SUPERVISOR_NAME = "runyard-superv"  # the process name of every supervisor (ps, top; kill_tree spares them)
SUPERVISOR_MODULE = "runyard.runtime.supervisor"  # what a spawned supervisor runs (python -m)
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def become_subreaper() -> bool:
    return bool(_libc) and _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def set_process_name(name: str = SUPERVISOR_NAME) -> None:
    """The name ps -o comm / top show (Linux: 15 characters at most)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _in_child() -> None:
    # Runs between fork and exec: if the supervisor dies (even kill -9), the run's process gets SIGKILL too.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Captured:
    """A started process: its exit is watched by one thread, its output copied into a RotatingLog by another."""

    def __init__(self, popen: subprocess.Popen, log: RotatingLog, rank: int) -> None:
        self.popen, self.log, self.rank = popen, log, rank
        self.role = "main"  # or "service": stopped once the main processes have ended well
        self.rank_logs: list[int] = []  # ranks it starts itself (mpirun), whose output arrives through FIFOs
        self.exited = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"runyard-log-{rank}", daemon=True)
        self._reader.start()
        threading.Thread(target=self._wait, name=f"runyard-wait-{rank}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.exited.is_set() else None

    def _wait(self) -> None:
        self.popen.wait()
        self.exited.set()

    def _read(self) -> None:
        fd = self.popen.stdout.fileno()
        # Keeps draining even past the log cap: a script printing gigabytes must never block on a full pipe.
        while chunk := os.read(fd, 1 << 16):
            self.log.write(chunk)

    def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until the output written so far is in the log — the process has exited, but
        the copying thread may still be behind."""
        self._reader.join(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """After the process (and anything holding its output pipe) is gone: finish copying and close the log."""
        self._reader.join(timeout)
        self.popen.stdout.close()
        self.log.close()


class RankPipe:
    """One rank's output arriving through a FIFO (a rank started by another process, e.g. mpirun), copied into that
    rank's RotatingLog by a thread until every writer has closed it."""

    def __init__(self, path: Path, log: RotatingLog, rank: int) -> None:
        self.path, self.log, self.rank = path, log, rank
        os.mkfifo(path, 0o600)
        self._reader = threading.Thread(target=self._read, name=f"runyard-rank-log-{rank}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.path, "rb", buffering=0) as fifo:  # blocks until the rank opens it for writing
            while chunk := fifo.read(1 << 16):
                self.log.write(chunk)

    def drain(self, timeout: float) -> None:
        self._reader.join(timeout)

    def close(self, timeout: float = 5.0) -> None:
        if self._reader.is_alive():
            try:  # a rank that never started never opened its FIFO: open it once so the reader sees EOF
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self._reader.join(timeout)
        self.log.close()


def start(argv: list[str], env: dict[str, str], cwd: Path, log: RotatingLog, rank: int) -> Captured:
    popen = subprocess.Popen(
        argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_in_child, close_fds=True,
    )
    return Captured(popen, log, rank)


def stop_processes(procs: list[Captured], grace: float) -> None:
    """SIGTERM the process groups of ``procs`` (each started in its own session), SIGKILL what is left after
    ``grace`` seconds; returns once they have exited."""
    import time

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for proc in procs:
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(p.returncode is None for p in procs):
            time.sleep(0.02)
        if all(p.returncode is not None for p in procs):
            return


def kill_tree(grace: float) -> None:
    """Stop every descendant of this process: SIGTERM, then SIGKILL for those alive after ``grace`` seconds.

    Other runs' supervisors (a script may submit runs of its own) and their processes are left alone: as this
    process is a subreaper they may be its descendants, but they are not part of this run.
    """
    import psutil

    me = psutil.Process()
    victims = _run_descendants(me)
    if not victims:
        return
    for proc in victims:
        _signal(proc, signal.SIGTERM)
    _, alive = psutil.wait_procs(victims, timeout=grace)
    # Anything started meanwhile (a process forking while being stopped) goes too.
    alive = {p.pid: p for p in alive + _run_descendants(me)}.values()
    for proc in alive:
        _signal(proc, signal.SIGKILL)
    psutil.wait_procs(list(alive), timeout=2.0)


def _run_descendants(root) -> list:
    import psutil

    found, stack = [], [root]
    while stack:
        try:
            children = stack.pop().children()
        except psutil.Error:
            continue
        for child in children:
            try:
                if _is_supervisor(child):
                    continue  # another run, with its own life
            except psutil.Error:
                continue
            found.append(child)
            stack.append(child)
    return found


def _is_supervisor(proc) -> bool:
    """A run's supervisor: named so once it runs, or still importing after ``python -m runyard.runtime.supervisor``
    (a supervisor spawned by a script that then exits at once is re-parented here before it has its name)."""
    return proc.name() == SUPERVISOR_NAME or proc.cmdline()[1:3] == ["-m", SUPERVISOR_MODULE]


def _signal(proc, sig: int) -> None:
    import psutil

    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def reap_orphans(ours: list[Captured]) -> None:
    """Collect exited processes re-parented to the supervisor (never the ones whose exit a Captured watches)."""
    own = {c.pid for c in ours}
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == 0 or info.si_pid in own:
            return
        try:
            os.waitpid(info.si_pid, 0)
        except ChildProcessError:
            return
