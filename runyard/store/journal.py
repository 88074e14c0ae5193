"""Metric journals: what ``run.log`` accepted survives the death of the process that logged it.

Each logging process appends every value it accepts to its own journal, a memory-mapped file in the workspace
(``journal/<store>/<host>-<pid>-<token>.journal``). A store into a shared mapping is a store into the page cache:
it is on its way to the file as soon as it is made, whatever happens to the process after (SIGKILL, SIGSEGV,
``os._exit``), and it costs no system call. The process holds an ``flock`` on its journal for as long as it lives,
so anyone can tell a live journal from one whose process is gone.

The values are numbered in the order they were logged (the journal's sequence). The batched writer stores them as
before, each batch with ``journal=(name, first)`` so that the store moves the journal's mark in the same
transaction (``MetadataStore.log_batch``). Whoever finalizes a run — the supervisor, a Ray node agent — and any
runyard process that opens the workspace replays the journals of dead processes: values past the mark are stored,
each exactly once, then the journal is deleted. A process that ends normally with everything stored deletes its
own journal.

Layout: an 8-byte magic and 8 reserved bytes, then records, each starting with a type byte (0: nothing more),
written last: a key definition (run id, name, kind → index), a float or an int value of a defined key (29 bytes,
packed in place), or any other value as JSON.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import socket
import struct
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.store.metadata.entities import MetricRecord

if TYPE_CHECKING:
    from runyard.store.metadata import TrackingStore

MAGIC = b"RYJOURN1"
_HEADER = 16
_INITIAL_SIZE = 1 << 20
_REPLAY_BATCH = 50_000
_SUFFIX = ".journal"

_END, _KEY, _FLOAT, _INT, _JSON = 0, 1, 2, 3, 4
_KEYDEF = struct.Struct("<BIHHH")  # type, key index, len(run id), len(name), len(kind); then the three texts
_NUMBER = struct.Struct("<BIqdd")  # type, key index, step, value, timestamp
_INTEGER = struct.Struct("<BIqqd")
# What append writes: the same with the type byte left 0, set after the rest — a process killed mid-copy leaves a
# record that reads as the end, never a half-written value.
_NUMBER_BODY = struct.Struct("<xIqdd")
_INTEGER_BODY = struct.Struct("<xIqqd")
_TEXT = struct.Struct("<BI")  # type, length; then JSON [run_id, name, value, step, timestamp, kind]
_NUMBER_SIZE = _NUMBER.size
_pack_float, _pack_int = _NUMBER_BODY.pack_into, _INTEGER_BODY.pack_into
_ROOM = 64  # room a numeric record needs (checked before each, so one comparison covers it)


def folder_for(workspace_path: Path, tracking_uri: str) -> Path:
    """Where the journals of one metadata store live (one workspace folder may be opened with several stores)."""
    return workspace_path / "journal" / hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]


class Journal:
    """The journal of this process: ``append`` is called for every value, in the order the writer stores them."""

    __slots__ = ("name", "path", "_map", "_fd", "_size", "_end", "_keys", "count")

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.path = folder / (self.name + _SUFFIX)
        # Made under another name, locked, then renamed: a replayer never sees it unlocked.
        making = folder / f".{self.name}.new"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, _INITIAL_SIZE)
            self._map = mmap.mmap(fd, _INITIAL_SIZE)
            self._map[: len(MAGIC)] = MAGIC
            os.rename(making, self.path)
        except BaseException:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._size = _INITIAL_SIZE
        self._end = _HEADER
        self._keys: dict[tuple[str, str, str], int] = {}
        self.count = 0  # values appended: the next value's sequence number

    def append(self, record: MetricRecord) -> None:
        run_id, name, value, step, timestamp, kind = record
        index = self._keys.get((run_id, name, kind))
        if index is None:
            index = self._define(run_id, name, kind)
        end = self._end
        if end + _ROOM > self._size:
            self._grow(_ROOM)
        kind_of = type(value)
        try:
            if kind_of is float:
                _pack_float(self._map, end, index, step, value, timestamp)
                self._map[end] = _FLOAT
                self._end = end + _NUMBER_SIZE
            elif kind_of is int:
                _pack_int(self._map, end, index, step, value, timestamp)
                self._map[end] = _INT
                self._end = end + _NUMBER_SIZE
            else:
                self._text(record)
        except (struct.error, OverflowError):  # a step or an int beyond 64 bits
            self._text(record)
        self.count += 1

    def _define(self, run_id: str, name: str, kind: str) -> int:
        index = len(self._keys)
        texts = [s.encode("utf-8", "surrogatepass") for s in (run_id, name, kind)]
        size = _KEYDEF.size + sum(map(len, texts))
        if self._end + size + _ROOM > self._size:
            self._grow(size + _ROOM)
        end = self._end
        self._map[end + _KEYDEF.size: end + size] = b"".join(texts)
        _KEYDEF.pack_into(self._map, end, 0, index, *map(len, texts))
        self._map[end] = _KEY  # the type byte last: the record is whole
        self._end = end + size
        self._keys[(run_id, name, kind)] = index
        return index

    def _text(self, record: MetricRecord) -> None:
        data = json.dumps([record.run_id, record.name, record.value, record.step, record.timestamp, record.kind],
                          allow_nan=True, default=str).encode("utf-8", "surrogatepass")
        size = _TEXT.size + len(data)
        if self._end + size + _ROOM > self._size:
            self._grow(size + _ROOM)
        end = self._end
        self._map[end + _TEXT.size: end + size] = data
        _TEXT.pack_into(self._map, end, 0, len(data))
        self._map[end] = _JSON
        self._end = end + size

    def _grow(self, need: int) -> None:
        size = self._size
        while size < self._end + need:
            size *= 2
        self._map.resize(size)  # the file grows with the mapping (zero-filled: reads as the end)
        self._size = size

    def close(self, remove: bool) -> None:
        """Unmap and unlock; ``remove``: every value is stored, the journal is not needed any more."""
        if remove:
            self.path.unlink(missing_ok=True)
        self.abandon()

    def abandon(self) -> None:
        """Let go of the file without touching it (a forked child: the journal and its lock stay its parent's)."""
        try:
            self._map.close()
        finally:
            os.close(self._fd)


def read(path: Path) -> list[MetricRecord]:
    """The values in a journal, in sequence order (a record cut short by the end of the process ends it)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path} is not a runyard metric journal")
    keys: list[tuple[str, str, str]] = []
    records: list[MetricRecord] = []
    at, size = _HEADER, len(data)
    try:
        while at < size:
            kind = data[at]
            if kind == _FLOAT or kind == _INT:
                if at + _NUMBER_SIZE > size:
                    break
                _, index, step, value, timestamp = (_NUMBER if kind == _FLOAT else _INTEGER).unpack_from(data, at)
                run_id, name, metric_kind = keys[index]
                records.append(MetricRecord(run_id, name, value, step, timestamp, metric_kind))
                at += _NUMBER_SIZE
            elif kind == _KEY:
                _, index, *lengths = _KEYDEF.unpack_from(data, at)
                at += _KEYDEF.size
                texts = []
                for length in lengths:
                    texts.append(data[at: at + length].decode("utf-8", "surrogatepass"))
                    at += length
                if at > size or index != len(keys):
                    break
                keys.append(tuple(texts))
            elif kind == _JSON:
                _, length = _TEXT.unpack_from(data, at)
                at += _TEXT.size
                if at + length > size:
                    break
                run_id, name, value, step, timestamp, metric_kind = json.loads(data[at: at + length])
                records.append(MetricRecord(run_id, name, value, step, timestamp, metric_kind))
                at += length
            else:
                break
    except (struct.error, IndexError, ValueError, UnicodeDecodeError):
        pass  # a torn last record: everything before it is whole
    return records


def replay(store: "TrackingStore", folder: Path) -> tuple[int, int]:
    """Store what the journals of dead processes hold past their marks, then delete them. Journals whose process
    is alive (locked) are left alone. Return (journals replayed, values in them). Store errors propagate."""
    journals = values = 0
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(_SUFFIX))
    except FileNotFoundError:
        return 0, 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # replayed by someone else meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its process is alive: its writer is storing it
                continue
            if not path.exists():  # replayed and deleted while this one waited to open it
                continue
            records = read(path)
            name = path.name[: -len(_SUFFIX)]
            for first in range(0, len(records), _REPLAY_BATCH):
                store.log_batch(metrics=records[first: first + _REPLAY_BATCH], journal=(name, first))
            path.unlink(missing_ok=True)
            journals += 1
            values += len(records)
        finally:
            os.close(fd)
    return journals, values
