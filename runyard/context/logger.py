"""Metric logging that never slows training and never loses data.

``log()`` appends to this process's metric journal (runyard.store.journal: a memory-mapped file that outlives a
crash of the process) and to an in-memory queue (a few microseconds). A background thread drains it in batches of up to
``RUNYARD_LOG_BATCH_SIZE`` values, one transaction each. A failed write is kept and retried with backoff, and
reported on stderr once per outage; it never raises into the user's script. ``flush()`` waits until everything
logged before it is stored. At process exit (atexit, SIGTERM) the queue is flushed; values that still cannot be
written are saved to a spool file that ``runyard sync`` writes to the store later. Every write names the journal
values it holds, so the store keeps each value once however often it is written again (a retry, a spool file, the
replay of the journal of a process that died).
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from functools import partial
from pathlib import Path

from runyard import env_vars
from runyard.context import wakeup
from runyard.store import journal
from runyard.store.metadata import MetricRecord, TrackingStore, stop_waiting

_DEFAULT_BATCH = 20_000
_DEFAULT_INTERVAL = 0.5
_DEFAULT_MAX_BACKLOG = 1_000_000  # values held in memory during a store outage before they go to disk
_MAX_BACKOFF = 5.0
_SIGNAL_FLUSH = 1.0  # seconds a SIGTERM-ed process gives its last values to reach the store (the journal keeps them)


class _Flush:
    """A marker in the queue: set once every value queued before it is stored."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class MetricLogger:
    """Batches metric records for one metadata store (one per store per process)."""

    def __init__(self, store: TrackingStore, spool_dir: str | os.PathLike | None = None,
                 journal_dir: str | os.PathLike | None = None) -> None:
        self.store = store
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self.journal_dir = Path(journal_dir) if journal_dir else None
        self.batch_size = int(os.environ.get(env_vars.LOG_BATCH_SIZE, _DEFAULT_BATCH))
        self.interval = float(os.environ.get(env_vars.LOG_FLUSH_INTERVAL, _DEFAULT_INTERVAL))
        self.max_backlog = int(os.environ.get(env_vars.LOG_MAX_BACKLOG, _DEFAULT_MAX_BACKLOG))
        self._reset()

    def _reset(self) -> None:
        self._journal: journal.Journal | None = None  # opened at the first value
        self._journal_failed = False
        self._seq = 0  # the journal sequence number of the first value not yet written (or spooled)
        self._append_lock = threading.Lock()  # the journal and the queue take values in the same order
        self._queue: deque = deque()
        self._pending: list[MetricRecord] = []  # taken from the queue, not yet written
        self._waiting: list[_Flush] = []  # flush markers behind the pending batch
        self._urgent = False  # a flush() waits: write everything now, batch after batch
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._io_lock = threading.Lock()  # held while the writer owns _pending
        self._failures = 0
        self._spilled: list[Path] = []  # spool files written during an outage, replayed when the store is back
        self.last_error: BaseException | None = None

    # -- producer side (the user's threads) --------------------------------------------------
    def log(self, record: MetricRecord) -> None:
        queue = self._queue
        with self._append_lock:
            kept = self._journal
            if kept is None:
                kept = self._open_journal()
            if kept is not None:
                kept.append(record)
            queue.append(record)
        if self._thread is None:
            self._start()
        elif len(queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()  # once: Event.set takes a lock and notifies, a cost the training loop would pay per value

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every value logged so far is stored. Return False if that did not happen in time."""
        if self._thread is None and not self._queue and not self._pending:
            return True
        marker = _Flush()
        self._queue.append(marker)
        self._urgent = True
        if self._thread is None:
            self._start()
        self._wake.set()
        return marker.done.wait(timeout) and not self._spilled

    def _open_journal(self) -> journal.Journal | None:
        if self._journal_failed or self.journal_dir is None:
            return None
        try:
            self._journal = journal.Journal(self.journal_dir)
        except OSError as exc:  # e.g. a read-only workspace: log as before, without the crash guarantee
            self._journal_failed = True
            _warn(f"no metric journal in {self.journal_dir} ({exc}); values logged shortly before a crash can be lost")
        return self._journal

    def _journal_ref(self, count: int) -> tuple[str, int] | None:
        """What the next ``count`` values to store are in the journal (None without one); moves past them."""
        first = self._seq
        self._seq += count
        return None if self._journal is None else (self._journal.name, first)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runyard-metrics", daemon=True)
                self._thread.start()
                wakeup.start_watching()

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval if not self._failures else min(_MAX_BACKOFF, 0.25 * 2**self._failures))
            self._wake.clear()
            with self._io_lock:
                self._drain()

    def _drain(self) -> None:
        """Write queued values in batches. After a write, go on only with a full batch waiting or a flush asked
        for: writing whatever trickled in meanwhile would turn into many tiny transactions whose overhead (under
        the GIL) the training loop pays."""
        queue, size = self._queue, self.batch_size
        if self._spilled and not self._replay_spilled():
            if len(self._pending) + len(queue) > self.max_backlog:  # the outage goes on: keep memory bounded
                self._spill()
            return
        while True:
            batch = self._pending
            while len(batch) < size and not self._waiting:
                try:
                    item = queue.popleft()
                except IndexError:
                    break
                if type(item) is _Flush:
                    self._waiting.append(item)  # write what came before it, then release it
                else:
                    batch.append(item)
            if batch and not self._write(batch):
                return
            self._pending = []
            for marker in self._waiting:
                marker.done.set()
            self._waiting = []
            if not queue:
                self._urgent = False
                return
            if len(queue) < size and not self._urgent:
                return

    def _write(self, batch: list[MetricRecord]) -> bool:
        ref = None if self._journal is None else (self._journal.name, self._seq)
        if self._attempt(lambda: self.store.log_batch(metrics=batch, journal=ref), f"write {len(batch)} metric values"):
            self._seq += len(batch)
            return True
        self._pending = batch
        if len(batch) + len(self._queue) > self.max_backlog:
            self._spill()
        return False

    def _attempt(self, call, what: str) -> bool:
        """Run a store call; on failure count it, report the first of an outage, and say False."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - a store error must never reach the training script
            self.last_error = exc
            if self._failures == 0:
                _warn(f"could not {what} to {_where(self.store)} (retrying): {exc}")
            self._failures += 1
            return False
        if self._failures:
            _warn(f"metric writes to {_where(self.store)} recovered after {self._failures} failed attempts")
        self._failures = 0
        return True

    def _spill(self) -> None:
        """An outage with more than ``max_backlog`` values waiting: move them to disk instead of memory."""
        records, markers = self._take_all()
        self._waiting.extend(markers)  # released once what came before them is stored or spilled
        path = spool(records, self.spool_dir, self._journal_ref(len(records)))
        self._spilled.append(path)
        _warn(f"{len(records)} metric values are waiting for {_where(self.store)}; saved to {path} and written "
              "automatically when it is reachable again")

    def _take_all(self) -> tuple[list[MetricRecord], list[_Flush]]:
        """Empty the pending batch and the queue (popleft is safe while other threads still append)."""
        records, self._pending = self._pending, []
        markers = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if type(item) is _Flush:
                markers.append(item)
            else:
                records.append(item)
        return records, markers

    def _replay_spilled(self) -> bool:
        while self._spilled:
            path = self._spilled[0]
            if not self._attempt(partial(replay_file, self.store, path), f"write the values saved in {path}"):
                return False
            self._spilled.pop(0)
        return True

    # -- process exit ------------------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Flush; whatever still cannot be stored stays in the journal (without one: a spool file). Never dropped."""
        if self.flush(timeout):
            with self._io_lock, self._append_lock:
                if self._journal is not None and not self._queue and not self._pending:
                    self._journal.close(remove=True)  # every value is stored
                    self._journal, self._seq = None, 0  # values logged later (exit callbacks) go to a new one
            return
        with self._io_lock, self._append_lock:  # the writer may be mid-retry: take its batch between attempts
            records, _ = self._take_all()
            paths, self._spilled = list(self._spilled), []
            if records and self._journal is not None:
                # They are in the journal already: it outlives this process, and whoever finalizes the run (or
                # opens the workspace next) stores them — no spool file, no `runyard sync`. The journal is left for
                # that replay; values logged after this go to a new one.
                _warn(f"{len(records)} metric values could not be written to {_where(self.store)} "
                      f"({self.last_error}); they wait in the metric journal {self._journal.path} and are stored once "
                      "it is reachable")
                self._journal.close(remove=False)
                self._journal, self._seq, records = None, 0, []
        if records:
            paths.append(spool(records, self.spool_dir, self._journal_ref(len(records))))
        if paths:
            _warn(
                f"metric values could not be written to {_where(self.store)} ({self.last_error}); they are saved to "
                f"{', '.join(map(str, paths))} — run `runyard sync` to write them once the store is reachable"
            )


def spool(records: list[MetricRecord], spool_dir: Path | None, ref: tuple[str, int] | None = None) -> Path:
    """Save values to a spool file; ``ref``: which journal values they are (its first line says so)."""
    folder = spool_dir or Path.home() / ".runyard" / "spool"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"metrics-{os.getpid()}-{time.time_ns()}.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        if ref is not None:
            out.write(json.dumps({"journal": ref[0], "first": ref[1]}) + "\n")
        for r in records:
            out.write(json.dumps(r._asdict(), allow_nan=True) + "\n")
    return path


def replay_file(store: TrackingStore, path: Path) -> int:
    """Write one spool file in a single transaction (a retry after a failure cannot duplicate), then delete it."""
    ref = None
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                if "journal" in item:
                    ref = (item["journal"], item["first"])
                else:
                    records.append(MetricRecord(**item))
    store.log_batch(metrics=records, journal=ref)
    path.unlink()
    return len(records)


def replay_spool(store: TrackingStore, spool_dir: Path) -> tuple[int, int]:
    """Write every spool file of a workspace (``runyard sync``); return (files, values) written."""
    files = values = 0
    for path in sorted(spool_dir.glob("metrics-*.jsonl")):
        values += replay_file(store, path)
        files += 1
    return files, values


def _where(store: TrackingStore) -> str:
    from runyard.store.metadata.sql_store import redact

    return redact(getattr(store, "url", "the metadata store"))


def _warn(message: str) -> None:
    try:
        print(f"runyard: {message}", file=sys.stderr, flush=True)
    except Exception:  # noqa: BLE001 - stderr closed at shutdown
        pass


# -- one logger per store per process ------------------------------------------------------------
_loggers: dict[str, MetricLogger] = {}
_loggers_lock = threading.Lock()
_exit_hooks_installed = False
_exit_callbacks: list = []


def logger_for(store: TrackingStore, spool_dir: str | os.PathLike | None = None,
               journal_dir: str | os.PathLike | None = None) -> MetricLogger:
    key = getattr(store, "url", str(id(store)))
    logger = _loggers.get(key)
    if logger is None:
        with _loggers_lock:
            logger = _loggers.get(key)
            if logger is None:
                logger = _loggers[key] = MetricLogger(store, spool_dir, journal_dir)
                _install_exit_hooks()
    return logger


def forget_logger(store: TrackingStore, timeout: float = 30.0) -> None:
    """Flush and drop the logger of ``store`` (when a store is closed)."""
    logger = _loggers.pop(getattr(store, "url", str(id(store))), None)
    if logger is not None:
        logger.close(timeout)


def close_all(timeout: float = 30.0) -> None:
    """Flush every logger; what cannot be stored in ``timeout`` seconds is spooled."""
    for logger in list(_loggers.values()):
        logger.close(timeout)


def on_exit(callback) -> None:
    """Run ``callback(reason)`` at process exit, after metrics are flushed (reason: 'exit' or 'signal')."""
    _install_exit_hooks()
    _exit_callbacks.append(callback)


def _at_exit(reason: str = "exit") -> None:
    timeout = 30.0
    if reason == "signal":
        # SIGTERM: the process must end within its run's kill grace whatever the store's state. What cannot be
        # stored now is in the metric journal, which whoever finalizes the run stores: no waiting for the database.
        stop_waiting()
        timeout = _SIGNAL_FLUSH
    close_all(timeout)
    for callback in list(_exit_callbacks):
        try:
            callback(reason)
        except Exception as exc:  # noqa: BLE001
            _warn(f"at exit: {exc}")
    close_all(timeout)  # what the callbacks logged (e.g. a run's last status-related metrics)


def _install_exit_hooks() -> None:
    global _exit_hooks_installed
    if _exit_hooks_installed:
        return
    _exit_hooks_installed = True
    atexit.register(_at_exit)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        started = threading.Event()

        def on_sigterm(signum, frame):
            started.set()
            atexit.unregister(_at_exit)
            _at_exit("signal")
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        try:
            signal.signal(signal.SIGTERM, on_sigterm)
        except (ValueError, OSError):  # not allowed here (embedded interpreter): atexit still flushes
            return
        wakeup.arm(signal.SIGTERM, on_sigterm, started)  # a SIGTERM the main thread missed is sent again


def _after_fork_in_child() -> None:
    # The writer thread does not survive fork(); a forked rank starts with an empty queue of its own.
    global _loggers_lock
    _loggers_lock = threading.Lock()
    for logger in _loggers.values():
        if logger._journal is not None:
            logger._journal.abandon()  # the parent's: its values are the parent's to store
        logger._reset()
    wakeup.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
