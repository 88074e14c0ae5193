"""Metadata store: open one by URL; stores are shared per process and reopened after fork()."""
from __future__ import annotations

import os
import threading

from runyard.store.metadata.api import MetadataStore, RegistryStore, TrackingStore
from runyard.store.metadata.entities import ArtifactInfo, ExperimentInfo, LatestMetric, MetricRecord, MetricSeries, RunInfo
from runyard.store.metadata.outage import stop_waiting, stopping
from runyard.store.metadata.sqlite_store import SqliteStore, sqlite_path

_stores: dict[str, MetadataStore] = {}
_lock = threading.Lock()


def open_metadata_store(url: str) -> MetadataStore:
    """Return the process-wide store for ``url``, creating (and migrating) it on first use."""
    with _lock:
        store = _stores.get(url)
        if store is None:
            path = sqlite_path(url)
            if path is not None:  # sqlite3 for the everyday calls; SQLAlchemy when needed (sqlite_store.py)
                store = _stores[url] = SqliteStore(url, path)
            else:
                from runyard.store.metadata.sql_store import SqlMetadataStore

                store = _stores[url] = SqlMetadataStore(url)
        return store


def close_metadata_store(url: str) -> None:
    """Flush nothing, forget the process-wide store for ``url`` and release its connections."""
    with _lock:
        store = _stores.pop(url, None)
    if store is not None:
        store.close()


def release_connections() -> None:
    """Close every pooled connection of this process's stores (they reopen on next use, ~1 ms).

    Call it before ``fork()`` when the child will use a store: SQLite keeps per-process lock state in memory,
    and a child that inherits a connection to the database file inherits locks it does not hold — its writes
    can then be lost (see https://www.sqlite.org/howtocorrupt.html, "carrying an open connection across fork").
    """
    with _lock:
        stores = list(_stores.values())
    for store in stores:
        store.close()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at fork time
    for store in _stores.values():
        after_fork = getattr(store, "after_fork", None)
        if after_fork:
            after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "stop_waiting",
    "stopping",
    "ArtifactInfo",
    "ExperimentInfo",
    "LatestMetric",
    "MetadataStore",
    "RegistryStore",
    "TrackingStore",
    "MetricRecord",
    "MetricSeries",
    "RunInfo",
    "close_metadata_store",
    "open_metadata_store",
    "release_connections",
]
