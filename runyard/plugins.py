"""Extension points: a lower layer asks by name for what a higher one provides, instead of importing it.

Each group is a table of name → object. A package fills it in two ways: ``register()`` when its module is imported,
or an entry point of the group's name in its metadata (runyard's own are declared in ``pyproject.toml``), loaded the
first time the name is asked for — a process that never imported the provider (a spawned supervisor) still finds it.
"""
from __future__ import annotations

import threading
from typing import Any

RUN_KINDS = "runyard.run_kinds"  # what drives a run of a kind other than "script" (a sweep's driver)
RUN_TYPES = "runyard.run_types"  # the Run class of a stored run of a run type (a sweep's parent: HyperDriveRun)
RUN_INPUTS = "runyard.run_inputs"  # binds a job's data inputs at submission and makes them paths when it starts
FEATURES = "runyard.features"  # what a module hands on to one above it (Workspace.datastores, .experiments, .get_run…)
STALE_RUNS = "runyard.stale_runs"  # .alive(ids): drivers alive here; .clean_up(ids): after runs failed for a lost heartbeat

_registered: dict[str, dict[str, Any]] = {}
_declared: dict[str, dict[str, Any]] = {}  # group → name → entry point, read once per process (~20 ms)
_lock = threading.Lock()


def register(group: str, name: str, provider: Any) -> None:
    """Make ``provider`` the answer to ``load(group, name)`` in this process."""
    with _lock:
        _registered.setdefault(group, {})[name] = provider


def load(group: str, name: str) -> Any:
    """What provides ``name`` in ``group``; LookupError (naming what is known) when nothing does."""
    found = _registered.get(group, {}).get(name)
    if found is not None:
        return found
    ep = _entry_points(group).get(name)
    if ep is not None:
        provider = ep.load()
        register(group, name, provider)
        return provider
    known = sorted({*_registered.get(group, {}), *_entry_points(group)})
    raise LookupError(f"nothing provides {name!r} in {group} (known: {', '.join(known) or 'none'}) — is the package "
                      "that adds it installed (pip install -e . registers runyard's own)?")


def each(group: str) -> list[Any]:
    """Every provider of ``group`` (registered here or declared by an installed package)."""
    for name in _entry_points(group):
        load(group, name)
    return list(_registered.get(group, {}).values())


def _entry_points(group: str) -> dict[str, Any]:
    found = _declared.get(group)
    if found is None:
        from importlib.metadata import entry_points

        found = _declared[group] = {ep.name: ep for ep in entry_points(group=group)}
    return found
