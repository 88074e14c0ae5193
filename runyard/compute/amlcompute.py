"""Azure ML's ``AmlCompute`` on runyard: the same calls, mapped onto runyard's targets.

    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    target = ComputeTarget.create(ws, "cpu-cluster", config)
    target.wait_for_completion(show_output=True)

Where it runs:

* with a Ray cluster named by ``RUNYARD_CLUSTER`` (its address, e.g. ``http://head:8265``) or by the workspace
  config (``{"compute": {"amlcompute": {"cluster": "http://head:8265"}}}``), the target is that cluster (a Ray
  target attached to it; a job may use up to ``max_nodes`` Ray nodes);
* otherwise it is a **local pool**: this machine, running up to ``max_nodes`` runs of the pool at once. A job that
  asks for ``node_count`` nodes runs its ``node_count × process_count_per_node`` processes here (a notice says so),
  so a notebook written for a 4-node cluster runs unchanged on a laptop.

``vm_size`` is recorded; a GPU size (``Standard_NC…``, ``ND…``, ``NV…``) on a machine with no GPU gives a warning.
``vm_priority``, ``idle_seconds_before_scaledown``, ``admin_username``… are accepted and recorded.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runyard.compute.api import ComputeStatus, local_status
from runyard.compute.local_target import LocalTarget
from runyard.compute.ray_config import RayCompute, RayComputeConfiguration
from runyard.config.job import JobSpec
from runyard.errors import ComputeError, ConfigError, warn
from runyard.runtime.resources import gpu_ids
from runyard.store.workspace_context import WorkspaceContext

if TYPE_CHECKING:
    pass

CLUSTER_VAR = "RUNYARD_CLUSTER"
# Azure's GPU VM families: NC, ND, NV (with their versions and suffixes: Standard_NC6s_v3, STANDARD_ND40RS_V2…).
_GPU_SIZE = re.compile(r"^(standard_)?n[cdv]\d", re.IGNORECASE)


def is_gpu_size(vm_size: str | None) -> bool:
    return bool(vm_size) and bool(_GPU_SIZE.match(str(vm_size).strip()))


@dataclass
class AmlComputeProvisioningConfiguration:
    """What ``AmlCompute.provisioning_configuration(...)`` returns."""

    vm_size: str = "STANDARD_D2_V2"
    max_nodes: int = 4
    min_nodes: int = 0
    vm_priority: str = "dedicated"
    idle_seconds_before_scaledown: int | None = None
    azure_settings: dict[str, Any] = field(default_factory=dict)  # the rest, recorded (admin_username, vnet…)
    mode: str = "provision"

    def validate(self) -> None:
        if isinstance(self.max_nodes, bool) or not isinstance(self.max_nodes, int) or self.max_nodes < 1:
            raise ConfigError(f"max_nodes must be a whole number >= 1, got {self.max_nodes!r}")
        if (isinstance(self.min_nodes, bool) or not isinstance(self.min_nodes, int)
                or not 0 <= self.min_nodes <= self.max_nodes):
            raise ConfigError(f"min_nodes must be between 0 and max_nodes={self.max_nodes}, got {self.min_nodes!r}")
        if not isinstance(self.vm_size, str) or not self.vm_size.strip():
            raise ConfigError(f"vm_size must be a VM size name such as 'STANDARD_D2_V2', got {self.vm_size!r}")
        if str(self.vm_priority).lower() not in ("dedicated", "lowpriority"):
            raise ConfigError(f"vm_priority must be 'dedicated' or 'lowpriority', got {self.vm_priority!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AmlComputeProvisioningConfiguration":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class AmlCompute:
    """Azure's managed cluster, as runyard runs it (see the module's docstring)."""

    @staticmethod
    def provisioning_configuration(vm_size: str = "STANDARD_D2_V2", vm_priority: str = "dedicated",
                                   min_nodes: int = 0, max_nodes: int = 4,
                                   idle_seconds_before_scaledown: int | None = None, **azure_settings: Any
                                   ) -> AmlComputeProvisioningConfiguration:
        config = AmlComputeProvisioningConfiguration(
            vm_size=vm_size, max_nodes=max_nodes, min_nodes=min_nodes, vm_priority=vm_priority,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            azure_settings={k: v for k, v in azure_settings.items() if _jsonable(v)})
        config.validate()
        return config

    @staticmethod
    def supported_vmsizes(workspace: "WorkspaceContext" = None, location: str | None = None) -> list[dict[str, Any]]:
        """This machine, as the one 'size' a local pool has."""
        return [{"name": "local", "vCPUs": os.cpu_count() or 1, "gpus": len(gpu_ids())}]


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def cluster_address(workspace: "WorkspaceContext") -> str | None:
    """The Ray cluster AmlCompute targets go to: ``$RUNYARD_CLUSTER``, else ``compute.amlcompute.cluster``."""
    return os.environ.get(CLUSTER_VAR) or (workspace.config.get("compute") or {}).get("amlcompute", {}).get("cluster")


def warn_about_size(config: AmlComputeProvisioningConfiguration) -> None:
    if is_gpu_size(config.vm_size) and not gpu_ids():
        warn(f"vm_size={config.vm_size!r} is a GPU size but this machine has no GPU: runs on this target use "
             "the CPU (a job with use_gpu=True too, unless RUNYARD_REQUIRE_GPU=1)")


def ray_configuration(config: AmlComputeProvisioningConfiguration, address: str) -> RayComputeConfiguration:
    """An AmlCompute configuration as a Ray target attached to ``address`` (jobs may use ``max_nodes`` nodes)."""
    ray = RayCompute.attach_configuration(address, placement_strategy="SPREAD")
    return dataclasses.replace(ray, max_nodes=config.max_nodes, vm_size=config.vm_size, azure=config.to_dict())


class RemoteCompute:
    """Azure's attached VM. runyard reaches other machines through Ray: attach the Ray cluster running on them."""

    @staticmethod
    def attach_configuration(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError(
            "RemoteCompute/DsvmCompute attach a VM over SSH in Azure ML; runyard runs on other machines through a Ray "
            "cluster: start Ray there (`ray start --head`, then `ray start --address=HEAD:6379` on the others) and "
            "use ComputeTarget.create(ws, name, RayCompute.attach_configuration('http://HEAD:8265')) — "
            "from runyard.compute import RayCompute")

    provisioning_configuration = attach_configuration


DsvmCompute = RemoteCompute


class AmlComputePool(LocalTarget):
    """An AmlCompute target without a Ray cluster: a pool of this machine (its own queue of ``max_nodes`` runs)."""

    type = "amlcompute"

    def __init__(self, workspace: "WorkspaceContext", name: str,
                 config: AmlComputeProvisioningConfiguration | None = None) -> None:
        super().__init__(workspace, name)
        if config is None:
            config = AmlComputeProvisioningConfiguration.from_dict(workspace.metadata.get_compute_target(name).config)
        self.config = config
        self.settings["max_concurrent_runs"] = config.max_nodes

    def layout(self, job: JobSpec) -> JobSpec:
        """A pool of this machine runs a job's ``node_count × process_count_per_node`` processes here, as one node."""
        if job.node_count > self.config.max_nodes:
            raise ComputeError(f"compute target {self.name!r} has max_nodes={self.config.max_nodes}; the job asks for "
                               f"node_count={job.node_count}")
        if job.node_count == 1:
            return job
        warn(f"compute target {self.name!r} is a pool of this machine: the job's {job.node_count} nodes × "
             f"{job.process_count_per_node} process(es) run as {job.world_size} processes here")
        return job.on_one_node()

    def _pool(self, job: JobSpec) -> tuple[str, int, list[str]]:
        pool, capacity, gpus = super()._pool(job)
        return (pool, capacity, gpus) if pool != "cpu" else (f"pool-{self.name}", capacity, gpus)  # GPU runs share the machine's GPU pool

    def provision(self, show_output: bool = False) -> None:
        if show_output:
            print(f"{self.name}: a pool of this machine, up to {self.config.max_nodes} run(s) at once "
                  f"(set {CLUSTER_VAR} to a Ray cluster's address to run AmlCompute targets there)")

    def get_status(self) -> "ComputeStatus":
        """This machine; each of the pool's ``max_nodes`` slots counts as a node."""
        return dataclasses.replace(local_status(), node_count=self.config.max_nodes)

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": "AmlCompute", "provisioningState": "Succeeded", "location": "local",
                "properties": {"vmSize": self.config.vm_size, "vmPriority": self.config.vm_priority,
                               "scaleSettings": {"minNodeCount": self.config.min_nodes,
                                                 "maxNodeCount": self.config.max_nodes,
                                                 "nodeIdleTimeBeforeScaleDown":
                                                     self.config.idle_seconds_before_scaledown},
                               "runyard": "a pool of this machine"}}


__all__ = ["AmlCompute", "AmlComputePool", "AmlComputeProvisioningConfiguration", "CLUSTER_VAR", "DsvmCompute",
           "RemoteCompute", "cluster_address", "is_gpu_size"]
