"""Captured output: capped, rotated log files written by the supervisor, and a reader that follows them live."""
from __future__ import annotations

import codecs
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runyard.store.workspace_context import WorkspaceContext

# Where a run's files live, in the run's folder and in the artifact store alike.
BUILD_LOG_NAME = "logs/runyard/environment_build.txt"
LAUNCHER_LOG = "logs/runyard/launcher.txt"  # the output of a process that starts ranks itself (mpirun)
SUPERVISOR_LOG = "logs/runyard/supervisor.txt"


def user_log_name(rank: int) -> str:
    """Captured output of rank N is logs/user_log_N.txt; past its cap it is rotated to user_log_N.1.txt, .2.txt …
    (``rotated_path``; the highest number is the oldest part)."""
    return f"logs/user_log_{rank}.txt"


def ordered_log_names(names: list[str], rank: int) -> list[str]:
    """The parts of a rank's log among ``names`` (paths like ``logs/user_log_0.1.txt``), oldest first."""
    import re

    pattern = re.compile(rf"^logs/user_log_{rank}(?:\.(\d+))?\.txt$")
    parts = [(int(m.group(1) or 0), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(parts, reverse=True)]


class RotatingLog:
    """Append-only log with a size cap: past ``max_bytes`` the file becomes ``NAME.1.txt`` (older ones shift to
    ``.2`` …, at most ``backups`` kept) and a new one starts, so a script printing gigabytes uses bounded disk.
    The last ``tail_bytes`` written are kept in memory for error summaries."""

    def __init__(self, path: Path, max_bytes: int, backups: int = 2, tail_bytes: int = 64 * 1024) -> None:
        self.path = path
        self.max_bytes = max(1024, int(max_bytes))
        self.backups = max(0, int(backups))
        self.rotations = 0
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._tail_bytes = tail_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab", buffering=0)  # unbuffered: live readers see every chunk at once
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        while data:
            room = self.max_bytes - self._size
            if room <= 0:
                self._rotate()
                continue
            part, data = data[:room], data[room:]
            self._file.write(part)
            self._size += len(part)
            self._remember(part)

    def _remember(self, data: bytes) -> None:
        self._tail.append(data[-self._tail_bytes:])
        self._tail_size += len(self._tail[-1])
        while self._tail_size - len(self._tail[0]) >= self._tail_bytes:
            self._tail_size -= len(self._tail.popleft())

    def _rotate(self) -> None:
        self._file.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            rotated_path(self.path, self.backups).unlink(missing_ok=True)
            for i in range(self.backups - 1, -1, -1):  # .1 → .2, then the file itself → .1
                if rotated_path(self.path, i).exists():
                    os.replace(rotated_path(self.path, i), rotated_path(self.path, i + 1))
        self.rotations += 1
        self._file = open(self.path, "ab", buffering=0)
        self._size = 0

    def last_lines(self, n: int = 20) -> list[str]:
        text = b"".join(self._tail).decode("utf-8", errors="replace")
        return text.splitlines()[-n:]

    def close(self) -> None:
        self._file.close()


def rotated_path(path: Path, n: int) -> Path:
    """``user_log_0.txt`` → ``user_log_0.N.txt`` (N=0: the file itself)."""
    return path if n == 0 else path.with_name(f"{path.stem}.{n}{path.suffix}")


def decode_chunks(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text from byte chunks, never splitting a character across chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def follow(path: Path, finished: Callable[[], bool], poll: float = 0.05) -> Iterator[bytes]:
    """Bytes appended to ``path`` until ``finished()`` says the writer is done (then the rest is drained).

    Follows rotation: when the name points at a new file, the old one is read to its end first (a reader that
    falls a whole file behind skips to the newest: the log is capped, and this is a live view). Returns when the
    file does not exist once the writer is finished (the caller then reads the stored copy).
    """
    handle = None
    while True:
        done = finished()  # asked before reading, so nothing written before "done" is missed
        if handle is None:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                if done:
                    return
                time.sleep(poll)
                continue
        chunk = handle.read(1 << 16)
        if chunk:
            yield chunk
            continue
        if _replaced(handle, path):
            handle.close()
            handle = None
            continue
        if done:
            handle.close()
            return
        time.sleep(poll)


def _replaced(handle, path: Path) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def stored_log(workspace: "WorkspaceContext", run_id: str, rank: int) -> Iterator[str]:
    """A finished run's log of one rank, read from the artifact store."""
    names = ordered_log_names([a.path for a in workspace.metadata.list_artifacts(run_id, "logs")], rank)
    for name in names:
        yield from stored_text(workspace, run_id, name)


def stored_text(workspace: "WorkspaceContext", run_id: str, name: str) -> Iterator[str]:
    """One stored file of a run as text chunks; nothing when the run has no such file."""
    if not any(a.path == name for a in workspace.metadata.list_artifacts(run_id, name.rsplit("/", 1)[0])):
        return
    with workspace.artifacts.open(run_id, name) as f:
        yield from decode_chunks(iter(lambda f=f: f.read(1 << 16), b""))
