"""Starting a run's supervisor detached from the submitter: forked (milliseconds) when that is safe, from a zygote
in a process that has threads (a sweep's driver), else a fresh interpreter (``python -m runyard.runtime.supervisor``)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from runyard.errors import ComputeError
from runyard.runtime.processes import SUPERVISOR_MODULE, set_process_name

_zygote: "Zygote | None" = None  # set in a process that submits many runs from several threads (a sweep's driver)


def start_supervisor(run_dir: Path, how: str = "auto") -> None:
    """Start the detached supervisor of the run in ``run_dir``: forked (milliseconds) when this process can fork
    safely or has a zygote, else a fresh interpreter."""
    if how == "auto" and _zygote is not None:
        _zygote.start(run_dir)
    elif how == "auto" and _fork_is_safe():
        _fork_supervisor(run_dir)
    else:
        _spawn_supervisor(run_dir)


class Zygote:
    """A process forked while its parent is still single-threaded, which forks supervisors on request: a process
    that goes on to start threads (a sweep's driver) still starts runs in milliseconds instead of spawning a fresh
    interpreter for each (~0.2 s). Make it before any thread starts; ``close()`` ends it."""

    def __init__(self) -> None:
        # What every supervisor loads, loaded once here: a supervisor forked from a zygote of a fresh interpreter
        # (a sweep's driver spawned by a threaded submitter) would otherwise import SQLAlchemy's store, fsspec and
        # psutil itself, ~0.4 s of CPU per trial.
        import psutil  # noqa: F401
        from runyard.store.artifacts import fsspec_store  # noqa: F401
        from runyard.store.metadata import sql_store  # noqa: F401

        requests_r, self._requests = os.pipe()
        self._acks, acks_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the zygote: one request per line, one byte back ("1" started, "0" failed)
            code = 0
            try:
                os.close(self._requests)
                os.close(self._acks)
                with os.fdopen(requests_r, encoding="utf-8") as requests:
                    for line in requests:
                        try:
                            _fork_supervisor(Path(line.rstrip("\n")))
                            os.write(acks_w, b"1")
                        except Exception:  # noqa: BLE001 - the requester says it
                            os.write(acks_w, b"0")
            except BaseException:  # noqa: BLE001 - never unwind into the parent's code
                code = 1
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(acks_w)
        self.pid = pid
        self._lock = threading.Lock()

    def start(self, run_dir: Path) -> None:
        with self._lock:
            os.write(self._requests, f"{run_dir}\n".encode())
            if os.read(self._acks, 1) != b"1":
                raise ComputeError(f"the zygote could not start the supervisor of {run_dir}")

    def close(self) -> None:
        os.close(self._requests)
        os.close(self._acks)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def use_zygote(zygote: "Zygote | None") -> None:
    global _zygote
    _zygote = zygote


def _fork_is_safe() -> bool:
    """Fork only a process with one thread (threads' locks would be copied held), on Linux (/proc is read)."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):
        return False
    return threads == 1  # also counts native threads (BLAS pools, gRPC…) that threading does not see


def _spawn_supervisor(run_dir: Path) -> None:
    """A fresh interpreter runs the supervisor (~0.2 s of imports before the run starts)."""
    log = open(run_dir / "supervisor.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: a Ctrl-C or exit of the submitter does not reach it
            close_fds=True, cwd=str(run_dir),
        )
    except OSError as exc:
        raise ComputeError(f"cannot start the supervisor in {run_dir}: {exc}") from exc
    finally:
        log.close()
    # Reap it when it ends (no zombie in a long-lived notebook); the thread dies with this process.
    threading.Thread(target=proc.wait, name=f"runyard-reap-{proc.pid}", daemon=True).start()


def _fork_supervisor(run_dir: Path) -> None:
    """Fork twice: the grandchild, in its own session and re-parented to init, runs the supervisor with every
    module this process already imported — the run starts in milliseconds instead of after a fresh interpreter's
    imports. It never returns into the caller's code: it leaves with ``os._exit``."""
    from runyard.store.metadata import release_connections

    release_connections()  # the supervisor must not inherit SQLite connections (their lock state) from here
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)  # the middle process exits at once
        return
    code = 1
    try:
        # Named before the supervisor is forked, which inherits the name from its first instant: a script that
        # submits a run and exits at once has its own run's processes stopped, and kill_tree spares only processes
        # with this name (the middle process is waited for by the submitter, so it is never alone unnamed).
        set_process_name()
        os.setsid()
        if os.fork():
            os._exit(0)
        _detach_descriptors(run_dir)
        from runyard.runtime.supervisor import main

        code = main(["supervisor", str(run_dir), "forked"])
    except BaseException:  # noqa: BLE001 - whatever happens, never unwind into the submitter's stack
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _detach_descriptors(run_dir: Path) -> None:
    """Point the inherited descriptors away from what the submitter shares with others.

    stdin ← /dev/null, stdout/stderr → supervisor.log; every other inherited pipe, socket or terminal gets
    /dev/null put in its place (not closed: Python objects still own those numbers, and closing a reused number
    later would hit the wrong file). A process waiting for the submitter's output pipe to close is not kept
    waiting by the run, and a database socket shared with the submitter is never written to from here.
    """
    import stat

    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(run_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in (null, log):
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
            os.dup2(null, fd)
    os.chdir(run_dir)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
