"""A SQLite metadata store that imports SQLAlchemy only when it needs it (see ``queries``).

Read commands (``runyard runs list``, ``runyard metrics``), ``runyard submit``, a run's supervisor and a training
script that logs go through the standard library's ``sqlite3``; the first call not in ``CoreQueries`` opens the
full ``SqlMetadataStore`` (SQLAlchemy, migrations), which then serves everything.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from runyard.errors import StoreError
from runyard.store.metadata.api import MetadataStore, TrackingStore
from runyard.store.metadata.queries import (
    HEAD,
    INSERT_METRICS_QMARK,
    Conflict,
    CoreQueries,
    Query,
    Writer,
)

_row_types: dict[tuple[str, ...], type] = {}


def _row(cursor: sqlite3.Cursor, values: tuple) -> tuple:
    names = tuple(d[0] for d in cursor.description)
    kind = _row_types.get(names)
    if kind is None:
        kind = _row_types[names] = namedtuple("Row", names, rename=True)
    return kind(*values)


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///PATH`` URL (None for memory databases, URI filenames or query options:
    those open through SQLAlchemy)."""
    parts = urlsplit(url)
    if parts.scheme not in ("sqlite", "sqlite+pysqlite") or parts.query or parts.netloc:
        return None
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    return path if path and path != ":memory:" else None


class _Writer:
    """``CoreQueries``' writes on a sqlite3 connection."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: dict) -> list:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: dict | list[dict]) -> int:
        return (self.conn.executemany(sql, params) if isinstance(params, list) else self.conn.execute(sql, params)).rowcount

    def insert_metrics(self, rows: list[tuple]) -> None:
        self.conn.executemany(INSERT_METRICS_QMARK, rows)


_OWN = frozenset({"url", "_path", "_lock", "_conn", "_full", "_last_reap"})


class SqliteStore(CoreQueries):
    """A SQLite metadata store that opens its SQLAlchemy side (``SqlMetadataStore``) only when it needs it.

    The calls of ``CoreQueries`` (experiments, runs and their statuses, heartbeats, metrics, the artifact index) go
    through one ``sqlite3`` connection until then; any other call (the registry, the engine) opens the full store,
    which from then on serves everything. A database that is missing or not at the schema this runyard writes
    (``HEAD``) is opened by the full store at once, which creates or migrates it.
    """

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self._path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._full: MetadataStore | None = None
        self._last_reap = float("-inf")

    @property
    def full(self) -> MetadataStore:
        """The SQLAlchemy store (opened, and the schema migrated, on first use)."""
        with self._lock:
            if self._full is None:
                from runyard.store.metadata.sql_store import SqlMetadataStore

                self._full = SqlMetadataStore(self.url)
                self._drop_connection()
            return self._full

    # TrackingStore's conveniences funnel into list_runs and log_batch: served here too.
    iter_runs, log_metric, log_param, set_tag = (TrackingStore.iter_runs, TrackingStore.log_metric,
                                                 TrackingStore.log_param, TrackingStore.set_tag)

    def __getattr__(self, name: str) -> Any:  # everything CoreQueries does not have: the full store's
        if name.startswith("__") or name in _OWN:  # not set yet (a half-built or unpickled object)
            raise AttributeError(name)
        return getattr(self.full, name)

    def _connection(self) -> sqlite3.Connection | None:
        """The sqlite3 connection, or None when the database is not one sqlite3 may use (missing, or another schema
        revision): the full store then serves."""
        if self._conn is not None:
            return self._conn
        if not os.path.isfile(self._path):
            return None
        conn = sqlite3.connect(self._path, timeout=60, isolation_level=None, check_same_thread=False)
        try:  # as SqlMetadataStore's connections (sql_store._sqlite_on_connect; the file is in WAL mode already)
            for pragma in ("busy_timeout=60000", "synchronous=NORMAL", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            revision = None
        if revision is None or revision[0] != HEAD:
            conn.close()
            return None
        conn.row_factory = _row
        self._conn = conn
        return conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _reading(self, what: str) -> "contextmanager[Query]":
        return self._executor(what, "BEGIN", lambda full: full._reading(what),
                              lambda conn: lambda sql, params: conn.execute(sql, params).fetchall())

    def _writing(self, what: str) -> "contextmanager[Writer]":
        # IMMEDIATE takes the write lock up front (waiting for it): a deferred transaction that upgrades later
        # can fail at once with "database is locked" when another process holds it.
        return self._executor(what, "BEGIN IMMEDIATE", lambda full: full._writing(what), _Writer)

    @contextmanager
    def _executor(self, what: str, begin: str, of_full: Callable[[MetadataStore], Any],
                  on_sqlite3: Callable[[sqlite3.Connection], Any]) -> Iterator[Any]:
        """The full store's executor (``of_full``) once it is open or when sqlite3 may not serve, else
        ``on_sqlite3(conn)`` inside one transaction: committed, or rolled back when the block raises; an integrity
        error becomes ``Conflict``, any other SQLite error a ``StoreError`` that names what failed."""
        with self._lock:
            conn = None if self._full is not None else self._connection()
            if conn is None:
                with of_full(self.full) as executor:
                    yield executor
                return
            try:
                conn.execute(begin)
                try:
                    yield on_sqlite3(conn)
                except BaseException:
                    conn.rollback()
                    raise
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                raise Conflict(str(exc)) from exc
            except sqlite3.Error as exc:
                raise StoreError(f"metadata store {self.url} failed to {what}: {exc}") from exc

    def after_fork(self) -> None:
        """A forked child must not use the parent's connection (SQLite's locks are per process): forget it."""
        self._lock = threading.RLock()
        self._conn = None
        if self._full is not None and hasattr(self._full, "after_fork"):
            self._full.after_fork()

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
            if self._full is not None:
                self._full.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"


MetadataStore.register(SqliteStore)
