"""Runs this process drives (started with ``start_logging()`` or ``child_run()``): kept alive, never left Running.

While the process lives, a daemon thread heartbeats them (``RUNYARD_HEARTBEAT_INTERVAL``); if the process is
killed, the heartbeat stops and the next reader marks them Failed. At a normal exit they are Completed, Failed on
an uncaught exception, Canceled on SIGTERM.
"""
from __future__ import annotations

import os
import sys
import threading
from typing import Any, Protocol

from runyard.context import heartbeat
from runyard.errors import RunyardError
from runyard.status import RunStatus



class Run(Protocol):
    """What this module needs of a run it owns (``runyard.run.Run`` is one)."""

    id: str
    workspace: Any

    def complete(self) -> None: ...

    def fail(self, error_details: Any = None) -> None: ...

    def _finish(self, status: RunStatus, error: dict | None = None) -> None: ...


_runs: dict[str, Run] = {}
_lock = threading.Lock()
_uncaught: BaseException | None = None
_started = False
_wake = threading.Event()


def own(run: Run) -> None:
    run.workspace.metadata.heartbeat([run.id])  # from now on, a silent run is a dead one
    with _lock:
        _runs[run.id] = run
    _start()


def disown(run: Run) -> None:
    with _lock:
        _runs.pop(run.id, None)


def _start() -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    from runyard.context.logger import on_exit

    previous = sys.excepthook

    def excepthook(exc_type, exc, tb):
        global _uncaught
        _uncaught = exc
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    on_exit(_finish_all)
    heartbeat.start(_owned_runs, _wake)


def _owned_runs() -> list[tuple]:
    with _lock:
        return [(run.workspace.metadata, run.id) for run in _runs.values()]


def _finish_all(reason: str) -> None:
    """At exit, runs started here and not finished: Completed, Failed (uncaught exception) or Canceled (SIGTERM)."""
    with _lock:
        runs = list(_runs.values())[::-1]  # children before parents
    for run in runs:
        try:
            if reason == "signal":
                run._finish(RunStatus.CANCELED, error={"message": "the process was terminated (SIGTERM)"})
            elif _uncaught is not None:
                run.fail(error_details=_uncaught)
            else:
                run.complete()
        except RunyardError:
            pass  # already terminal (finished elsewhere): nothing to do


def _after_fork_in_child() -> None:
    # A forked child (a rank, a data-loader worker) does not drive its parent's runs.
    global _lock, _started, _wake
    _lock, _started, _wake = threading.Lock(), False, threading.Event()
    _runs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
