"""The local target's queue: at most ``capacity`` runs of a pool at once, the rest wait in submission order.

Everything is a file under ``WORKSPACE/local/queue/<pool>/`` held with ``flock``: a waiting run's ticket
(named by its submission time), and one lock file per slot that a running supervisor holds. A supervisor
that dies — even by ``kill -9`` — releases its locks with it, so a slot is never lost.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

# A ticket is written by the submitting process before the supervisor starts; if nobody has locked it for this
# long its supervisor never started (or died), and the ticket no longer holds a place in the line.
_UNCLAIMED_TICKET_SECONDS = 30.0
_NEXT_IN_LINE_POLL = 0.01


class LocalQueue:
    def __init__(self, root: Path, pool: str, capacity: int) -> None:
        self.dir = root / pool
        self.capacity = max(1, int(capacity))

    def ticket_for(self, run_id: str, submitted_ns: int) -> Path:
        return self.dir / f"{submitted_ns:020d}-{run_id}.ticket"

    def enqueue(self, run_id: str, submitted_ns: int) -> Path:
        """Take a place in line (done by the submitter, so the order is the order of submission)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ticket = self.ticket_for(run_id, submitted_ns)
        ticket.touch()
        return ticket

    def try_acquire(self, ticket: Path) -> int | None:
        """One attempt, without waiting: a slot when this ticket may take one now, else None (it keeps its place)."""
        with self._claimed(ticket):
            return self._attempt(ticket)[0]

    def acquire(self, ticket: Path, stop: Callable[[], bool], poll: float = 0.1) -> int | None:
        """Wait for a free slot; return the open slot lock (hold it while running), or None when ``stop()``.
        The runs next in line (at most ``capacity`` of them) look every 10 ms, so a slot freed is taken at once
        (a sweep of short trials); the rest every ``poll`` seconds."""
        with self._claimed(ticket):
            while not stop():
                slot, position = self._attempt(ticket)
                if slot is not None:
                    return slot
                time.sleep(min(poll, _NEXT_IN_LINE_POLL) if position < self.capacity else poll)
        ticket.unlink(missing_ok=True)  # given up: the place in line goes
        return None

    @contextmanager
    def _claimed(self, ticket: Path):
        """Hold the ticket's lock: "its owner is alive and waiting"."""
        self.dir.mkdir(parents=True, exist_ok=True)
        ticket.touch()
        fd = os.open(ticket, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _attempt(self, ticket: Path) -> tuple[int | None, int]:
        """(the slot taken or None, the runs ahead of this ticket in line)."""
        with self._locked():
            position = self._position(ticket.name)
            free = self._free_slots() if position < self.capacity else []
            for fd in free[1:]:
                os.close(fd)
            if position < len(free):  # the runs ahead of this one each take a free slot too
                ticket.unlink(missing_ok=True)
                return free[0], position
            if free:
                os.close(free[0])
            return None, position

    def position(self, ticket_name: str) -> int | None:
        """Runs ahead of this ticket in line (None when the ticket is gone: running or finished)."""
        if not (self.dir / ticket_name).exists():
            return None
        with self._locked():
            return self._position(ticket_name)

    # -- under the queue lock ---------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        fd = os.open(self.dir.parent / f"{self.dir.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _position(self, name: str) -> int:
        ahead = 0
        for other in sorted(os.listdir(self.dir)):
            if other >= name:
                break
            if other.endswith(".ticket") and self._waiting(self.dir / other):
                ahead += 1
        return ahead

    def _waiting(self, ticket: Path) -> bool:
        """A ticket holds its place while its owner locks it, or while it is young enough to be claimed."""
        try:
            fd = os.open(ticket, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # locked: a live supervisor waits on it
            if time.time() - os.fstat(fd).st_mtime < _UNCLAIMED_TICKET_SECONDS:
                return True
            ticket.unlink(missing_ok=True)  # abandoned
            return False
        finally:
            os.close(fd)

    def _free_slots(self) -> list[int]:
        """Lock every free slot; return their open descriptors (closing one frees its slot again)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        held = []
        for i in range(self.capacity):
            fd = os.open(self.dir / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(fd)
            except BlockingIOError:
                os.close(fd)
        return held

    @staticmethod
    def slot_index(slot: int) -> int:
        """Which slot (0 … capacity-1) an open slot lock from ``acquire`` holds."""
        name = os.readlink(f"/proc/self/fd/{slot}") if os.path.exists(f"/proc/self/fd/{slot}") else ""
        try:
            return int(os.path.basename(name).removeprefix("slot-").removesuffix(".lock"))
        except ValueError:
            return 0

    def running(self) -> int:
        """Slots in use now."""
        free = self._free_slots()
        for fd in free:
            os.close(fd)
        return self.capacity - len(free)
