"""How long a store call waits for a database that refuses connections, and when it stops waiting."""
from __future__ import annotations

import threading

_stopping = threading.Event()


def stop_waiting() -> None:
    """This process is ending (SIGTERM): store calls stop waiting for a database that refuses connections and fail
    at once (what is not stored stays in the metric journal and the run's folder for whoever comes next)."""
    _stopping.set()


def stopping() -> bool:
    return _stopping.is_set()


def refused(exc: BaseException) -> bool:
    """The server did not take the connection for now: too many clients, starting or stopping, not listening."""
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("too many clients", "remaining connection slots", "the database system is",
                                   "connection refused", "could not connect", "server closed the connection",
                                   "no such file or directory", "connection timeout", "timeout expired"))
