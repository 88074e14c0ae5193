"""SIGTERM reaches runyard's handler even when the main thread is about to block.

CPython runs a Python signal handler in the main thread, at its next check between bytecodes. A signal that arrives
while the main thread waits for the GIL just before a blocking call (``time.sleep``, a socket read), or that the
kernel hands to another thread, is noted but not acted on: the call starts anyway and the handler waits until it
returns — a minute, for a script sleeping a minute, with its last metrics unflushed and its run still Running.
runyard's own threads (the metric writer, the heartbeat) hold the GIL often enough to make that window real.

So CPython's wakeup fd (written by the C-level handler the moment the signal arrives, whichever thread takes it) is
watched by a thread: if the handler has not started shortly after, the signal is sent once more to the main thread
alone, which interrupts its blocking call and runs the handler. A wakeup fd the program set itself (asyncio's) is
left alone, and so is a handler that is no longer runyard's.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

_armed: tuple | None = None  # (read end, write end = the wakeup fd, signum, handler, started) once armed
_watching = False
_lock = threading.Lock()


def arm(signum: int, handler: Callable, started: threading.Event) -> None:
    """From the main thread, once ``handler`` is installed for ``signum``: set the wakeup fd. The watcher starts with
    runyard's first background thread (``start_watching``): without one, nothing competes with the main thread for
    the GIL, and a process with a single thread can still fork its runs' supervisors."""
    global _armed
    if _armed is not None or not hasattr(signal, "pthread_kill"):
        return
    reader, writer = os.pipe()  # not inherited by the processes this one starts
    os.set_blocking(writer, False)
    try:
        previous = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
    except (ValueError, OSError):  # not the main thread, or no wakeup fd here
        previous = None
    if previous != -1:  # the program's own (kept), or none possible
        if previous is not None:
            signal.set_wakeup_fd(previous)
        os.close(reader), os.close(writer)
        return
    _armed = (reader, writer, signum, handler, started)


def start_watching(patience: float = 0.2) -> None:
    """Start the watcher thread (once, if armed): it re-sends a SIGTERM the handler has not taken up in ``patience``
    seconds to the main thread."""
    global _watching
    with _lock:
        if _armed is None or _watching:
            return
        _watching = True
        reader, _, signum, handler, started = _armed
    main = threading.main_thread().ident

    def loop() -> None:
        try:
            while data := os.read(reader, 256):
                if signum in data and not started.wait(patience) and signal.getsignal(signum) is handler:
                    signal.pthread_kill(main, signum)
                    return  # once: the handler ends the process
        except OSError:  # closed
            pass

    threading.Thread(target=loop, name="runyard-signal-watch", daemon=True).start()


def after_fork_in_child() -> None:
    """A forked child (a data-loader worker) must not write its signals into its parent's wakeup fd."""
    global _armed, _watching, _lock
    _lock, _watching = threading.Lock(), False
    if _armed is None:
        return
    reader, writer = _armed[:2]
    _armed = None
    try:
        previous = signal.set_wakeup_fd(-1)
        if previous != writer:  # the program set its own since: put it back
            signal.set_wakeup_fd(previous)
    except (ValueError, OSError):
        pass
    os.close(reader), os.close(writer)
