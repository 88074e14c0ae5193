"""Compute targets by name. Built-in targets are imported when first used; packages can add more through the
``runyard.compute_targets`` entry-point group (name → ``module:Class``, a ComputeTarget subclass)."""
from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from runyard.compute.api import ComputeTarget, RunDescription, RunRef, SubmitRequest, TargetOption

if TYPE_CHECKING:
    from runyard.workspace import Workspace

_BUILTIN: dict[str, str] = {
    "local": "runyard.compute.local_target:LocalTarget",
}
ENTRY_POINT_GROUP = "runyard.compute_targets"


def known_targets() -> dict[str, str]:
    """Every target name → ``module:Class`` (built-in first; entry points may add names, not replace them)."""
    from importlib.metadata import entry_points

    found = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def get_target(workspace: "Workspace", name: str) -> ComputeTarget:
    """The compute target called ``name`` (built in, registered in the workspace, or from an entry point); unknown
    names get the list of known ones (and a close match)."""
    from runyard.compute import registry

    if name not in _BUILTIN:
        found = registry.lookup(workspace, name)
        if found is not None:
            return found
    targets = _BUILTIN if name in _BUILTIN else known_targets()  # reading entry points costs ~20 ms
    if name not in targets:
        names = sorted({*targets, *(r.name for r in workspace.metadata.list_compute_targets())})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise registry.ComputeTargetNotFound(f"unknown compute target {name!r}{hint} Known targets: {', '.join(names)}")
    module, _, cls = targets[name].partition(":")
    target_cls = getattr(importlib.import_module(module), cls)
    return target_cls(workspace, name)


def __getattr__(name: str):
    if name in ("RayCompute", "RayComputeConfiguration"):
        from runyard.compute import ray_target

        return getattr(ray_target, name)
    if name in ("AmlCompute", "AmlComputePool", "RemoteCompute", "DsvmCompute"):
        from runyard.compute import amlcompute

        return getattr(amlcompute, name)
    if name in ("ComputeStatus", "ComputeTargetNotFound", "ComputeTargetException"):
        from runyard.compute import registry

        return getattr(registry, name)
    raise AttributeError(name)


__all__ = ["AmlCompute", "ComputeTarget", "ComputeStatus", "ComputeTargetException", "ComputeTargetNotFound",
           "DsvmCompute", "RemoteCompute", "RayCompute", "RayComputeConfiguration",
           "RunDescription", "RunRef", "SubmitRequest", "TargetOption", "get_target", "known_targets"]
