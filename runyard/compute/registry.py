"""Compute targets registered in a workspace (Azure's ``ComputeTarget.create`` / ``ComputeTarget(ws, name)``).

``local`` always exists and is not stored; other targets are rows of the metadata store's ``compute_targets``
table: a name, a type (``ray``) and the configuration they were created with.
"""
from __future__ import annotations

import difflib
import importlib
import sys
from typing import Any

from runyard import validation
from runyard.compute import amlcompute
from runyard.compute.api import BUILTIN_NAMES, ComputeTarget
from runyard.compute.local_target import LocalTarget
from runyard.compute.ray_config import RayComputeConfiguration
from runyard.compute.ray_target import RayTarget
from runyard.errors import ComputeTargetException, ConfigError, NotFound
from runyard.store.workspace_context import WorkspaceContext

TYPES: dict[str, type[ComputeTarget]] = {"ray": RayTarget, "amlcompute": amlcompute.AmlComputePool}


class ComputeTargetNotFound(ComputeTargetException, ConfigError, NotFound):
    """No compute target by that name."""


def _type_of(workspace: "WorkspaceContext", config: Any) -> tuple[str, Any]:
    """The target type a configuration makes, and the configuration that type stores."""
    if isinstance(config, RayComputeConfiguration):
        return "ray", config
    if isinstance(config, amlcompute.AmlComputeProvisioningConfiguration):
        config.validate()
        amlcompute.warn_about_size(config)
        address = amlcompute.cluster_address(workspace)
        if address:
            return "ray", amlcompute.ray_configuration(config, address)
        return "amlcompute", config
    raise ConfigError(f"cannot create a compute target from a {type(config).__name__}: use "
                      "AmlCompute.provisioning_configuration(...), RayCompute.provisioning_configuration(...) or "
                      "RayCompute.attach_configuration(...)")


def target_class(type_: str) -> type[ComputeTarget]:
    return TYPES[type_]


def create(workspace: "WorkspaceContext", name: str, config: Any, show_output: bool = False) -> ComputeTarget:
    """Register ``name`` and bring its cluster up (a provisioned one is started here; an attached one is checked)."""
    validation.key(name, "compute target name")
    if name in BUILTIN_NAMES:
        raise ConfigError(f"{name!r} is runyard's built-in compute target; choose another name")
    type_, config = _type_of(workspace, config)
    config.validate()
    workspace.metadata.create_compute_target(name, type_, config.to_dict())
    target = target_class(type_)(workspace, name, config)
    try:
        if config.mode == "provision":
            target.provision(show_output=show_output)
        else:
            target.jobs().version()  # an unreachable cluster is an error now, not at the first submit
    except BaseException:
        stop = getattr(target, "stop_cluster", None)
        if stop is not None:
            stop()
        workspace.metadata.delete_compute_target(name)
        raise
    return target


def lookup(workspace: "WorkspaceContext", name: str) -> "ComputeTarget | None":
    """The registered target ``name`` (None when the workspace has none by that name)."""
    try:
        record = workspace.metadata.get_compute_target(name)
    except NotFound:
        return None
    return target_class(record.type)(workspace, name)


def all_targets(workspace: "WorkspaceContext") -> dict[str, ComputeTarget]:
    found = {n: get_target(workspace, n) for n in BUILTIN_NAMES}
    for record in workspace.metadata.list_compute_targets():
        found[record.name] = target_class(record.type)(workspace, record.name)
    return found


_BUILTIN: dict[str, type[ComputeTarget]] = {name: LocalTarget for name in BUILTIN_NAMES}
ENTRY_POINT_GROUP = "runyard.compute_targets"


def known_targets() -> dict[str, str]:
    """Every target name → ``module:Class`` (built-in first; entry points may add names, not replace them)."""
    from importlib.metadata import entry_points

    found = {name: f"{cls.__module__}:{cls.__name__}" for name, cls in _BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def get_target(workspace: "WorkspaceContext", name: str) -> ComputeTarget:
    """The compute target called ``name`` (built in, registered in the workspace, or from an entry point); unknown
    names get the list of known ones (and a close match)."""
    if name in _BUILTIN:
        return _BUILTIN[name](workspace, name)
    found = lookup(workspace, name)
    if found is not None:
        return found
    targets = known_targets()  # reading entry points costs ~20 ms
    if name not in targets:
        names = sorted({*targets, *(r.name for r in workspace.metadata.list_compute_targets())})
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        raise ComputeTargetNotFound(f"unknown compute target {name!r}{hint} Known targets: {', '.join(names)}")
    module, _, cls = targets[name].partition(":")
    target_cls = getattr(importlib.import_module(module), cls)
    return target_cls(workspace, name)


ComputeTarget.registry = sys.modules[__name__]  # ComputeTarget(ws, name) and ComputeTarget.create find targets here
