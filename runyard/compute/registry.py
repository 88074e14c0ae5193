"""Compute targets registered in a workspace (Azure's ``ComputeTarget.create`` / ``ComputeTarget(ws, name)``).

``local`` always exists and is not stored; other targets are rows of the metadata store's ``compute_targets``
table: a name, a type (``ray``) and the configuration they were created with.
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runyard import validation
from runyard.errors import ComputeError, ComputeTargetException, ConfigError, NotFound

if TYPE_CHECKING:
    from runyard.compute.api import ComputeTarget
    from runyard.workspace import Workspace

TYPES: dict[str, str] = {"ray": "runyard.compute.ray_target:RayTarget",
                         "amlcompute": "runyard.compute.amlcompute:AmlComputePool"}
BUILTIN_NAMES = ("local",)


class ComputeTargetNotFound(ComputeTargetException, ConfigError, NotFound):
    """No compute target by that name."""


@dataclass(frozen=True)
class ComputeStatus:
    """What ``target.get_status()`` answers; ``serialize()`` gives Azure's dict shape."""

    provisioning_state: str  # Succeeded, Stopped, Unreachable
    node_count: int
    cpus: float
    gpus: float
    nodes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def serialize(self) -> dict[str, Any]:
        return {"provisioningState": self.provisioning_state, "currentNodeCount": self.node_count,
                "cpus": self.cpus, "gpus": self.gpus, "nodes": self.nodes,
                "errors": [self.error] if self.error else None}


def _type_of(workspace: "Workspace", config: Any) -> tuple[str, Any]:
    """The target type a configuration makes, and the configuration that type stores."""
    from runyard.compute import amlcompute
    from runyard.compute.ray_target import RayComputeConfiguration

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


def target_class(type_: str):
    module, _, cls = TYPES[type_].partition(":")
    return getattr(importlib.import_module(module), cls)


def create(workspace: "Workspace", name: str, config: Any, show_output: bool = False) -> "ComputeTarget":
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


def lookup(workspace: "Workspace", name: str) -> "ComputeTarget | None":
    """The registered target ``name`` (None when the workspace has none by that name)."""
    try:
        record = workspace.metadata.get_compute_target(name)
    except NotFound:
        return None
    return target_class(record.type)(workspace, name)


def delete(target: "ComputeTarget") -> None:
    """Stop what the target started (a provisioned cluster) and forget it."""
    if target.name in BUILTIN_NAMES:
        raise ConfigError(f"{target.name!r} is built in and cannot be deleted")
    stop = getattr(target, "stop_cluster", None)
    if stop is not None:
        stop()
    target.workspace.metadata.delete_compute_target(target.name)


def all_targets(workspace: "Workspace") -> dict[str, "ComputeTarget"]:
    from runyard.compute import get_target

    found = {n: get_target(workspace, n) for n in BUILTIN_NAMES}
    for record in workspace.metadata.list_compute_targets():
        found[record.name] = target_class(record.type)(workspace, record.name)
    return found


def local_status() -> ComputeStatus:
    from runyard.compute.local_target import gpu_ids

    return ComputeStatus("Succeeded", 1, float(os.cpu_count() or 1), float(len(gpu_ids())),
                         [{"node_id": "local", "ip": "127.0.0.1", "head": True}])


def wait_until_up(target: "ComputeTarget", show_output: bool, min_node_count: int | None,
                  timeout_in_minutes: float) -> ComputeStatus:
    deadline = time.monotonic() + timeout_in_minutes * 60
    want = min_node_count or 1
    while True:
        status = target.get_status()
        if status.provisioning_state == "Succeeded" and status.node_count >= want:
            if show_output:
                print(f"{target.name}: {status.provisioning_state}, {status.node_count} node(s), "
                      f"{status.cpus:g} CPU, {status.gpus:g} GPU")
            return status
        if time.monotonic() > deadline:
            raise ComputeError(f"compute target {target.name!r} is not up after {timeout_in_minutes:g} minutes: "
                               f"{status.provisioning_state} with {status.node_count} node(s)"
                               + (f" ({status.error})" if status.error else ""))
        if show_output:
            print(f"{target.name}: {status.provisioning_state}, {status.node_count}/{want} node(s)…")
        time.sleep(1.0)
