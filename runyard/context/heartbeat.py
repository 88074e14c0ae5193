"""A daemon thread that heartbeats runs, so a reader can tell a live run from one whose driver died."""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from runyard import env_vars
from runyard.context import wakeup

if TYPE_CHECKING:
    from runyard.store.metadata import TrackingStore


def interval() -> float:
    return float(os.environ.get(env_vars.HEARTBEAT_INTERVAL, 10))


def start(runs: Callable[[], Iterable[tuple["TrackingStore", str]]], stop: threading.Event) -> threading.Thread:
    """Every ``RUNYARD_HEARTBEAT_INTERVAL`` seconds, heartbeat the (store, run id) pairs ``runs()`` returns."""

    def loop() -> None:
        failing = False
        while not stop.wait(interval()):
            by_store: dict[int, tuple] = {}
            for store, run_id in runs():
                by_store.setdefault(id(store), (store, []))[1].append(run_id)
            for store, ids in by_store.values():
                try:
                    store.heartbeat(ids)
                    failing = False
                except Exception as exc:  # noqa: BLE001 - a heartbeat must never disturb the run
                    if not failing:
                        print(f"runyard: heartbeat failed (will retry): {exc}", file=sys.stderr, flush=True)
                    failing = True

    thread = threading.Thread(target=loop, name="runyard-heartbeat", daemon=True)
    thread.start()
    wakeup.start_watching()  # a thread now competes with the main one: see runyard.context.wakeup
    return thread
