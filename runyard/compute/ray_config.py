"""How a Ray target reaches its cluster (the counterpart of Azure's ``AmlCompute`` configurations)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from runyard.errors import ConfigError

STRATEGIES = ("STRICT_SPREAD", "SPREAD", "PACK", "STRICT_PACK")


@dataclass
class RayComputeConfiguration:
    """How a Ray target reaches its cluster. ``provision``: runyard starts (and owns) the nodes on this machine."""

    mode: str  # "attach" or "provision"
    address: str | None = None  # attach: http://host:8265 (dashboard), ray://host:10001 or host:6379
    dashboard_address: str | None = None  # attach: the dashboard when it is not at the address's host:8265
    max_nodes: int = 4
    min_nodes: int = 0
    cpus_per_node: int | None = None  # provision: CPUs each local node offers (default: this machine's count)
    gpus_per_node: int = 0
    placement_strategy: str = "STRICT_SPREAD"
    python: str | None = None  # the interpreter that runs the driver on the head node (runyard installed there)
    queue_timeout_seconds: float = 3600.0
    vm_size: str | None = None  # recorded only (Azure scripts pass it)
    azure: dict[str, Any] | None = None  # made from AmlCompute.provisioning_configuration: its settings (max_nodes holds)

    def validate(self) -> None:
        if self.mode not in ("attach", "provision"):
            raise ConfigError(f"mode must be 'attach' or 'provision', got {self.mode!r}")
        if self.mode == "attach" and not self.address:
            raise ConfigError("RayCompute.attach_configuration needs the cluster's address, e.g. http://head:8265")
        if self.placement_strategy not in STRATEGIES:
            raise ConfigError(f"placement_strategy must be one of {', '.join(STRATEGIES)}, "
                              f"got {self.placement_strategy!r}")
        for name in ("max_nodes", "gpus_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "max_nodes" else 0):
                raise ConfigError(f"{name} must be a whole number >= {1 if name == 'max_nodes' else 0}, got {value!r}")
        if isinstance(self.min_nodes, bool) or not isinstance(self.min_nodes, int) or not 0 <= self.min_nodes <= self.max_nodes:
            raise ConfigError(f"min_nodes must be between 0 and max_nodes={self.max_nodes}, got {self.min_nodes!r}")
        if self.cpus_per_node is not None and (not isinstance(self.cpus_per_node, int) or self.cpus_per_node < 1):
            raise ConfigError(f"cpus_per_node must be a whole number >= 1, got {self.cpus_per_node!r}")
        if not (isinstance(self.queue_timeout_seconds, (int, float)) and self.queue_timeout_seconds > 0):
            raise ConfigError(f"queue_timeout_seconds must be a positive number, got {self.queue_timeout_seconds!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RayComputeConfiguration":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown Ray compute setting(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class RayCompute:
    """Configurations of Ray compute targets (the counterpart of Azure's ``AmlCompute``)."""

    @staticmethod
    def attach_configuration(address: str, dashboard_address: str | None = None,
                             placement_strategy: str = "STRICT_SPREAD", python: str | None = None,
                             queue_timeout_seconds: float = 3600.0) -> RayComputeConfiguration:
        """An existing cluster. ``placement_strategy="SPREAD"`` lets a job's nodes share a host (one-host test
        clusters); the default, ``STRICT_SPREAD``, puts each node of a job on a different Ray node."""
        cfg = RayComputeConfiguration("attach", address=address, dashboard_address=dashboard_address,
                                      placement_strategy=placement_strategy, python=python,
                                      queue_timeout_seconds=queue_timeout_seconds)
        cfg.validate()
        return cfg

    @staticmethod
    def provisioning_configuration(max_nodes: int = 4, min_nodes: int = 0, cpus_per_node: int | None = None,
                                   gpus_per_node: int = 0, placement_strategy: str = "STRICT_SPREAD",
                                   vm_size: str | None = None, queue_timeout_seconds: float = 3600.0,
                                   **_azure_only: Any) -> RayComputeConfiguration:
        """A cluster runyard starts on this machine: a head node and ``max(min_nodes, 1) - 1`` more nodes, up to
        ``max_nodes`` as jobs ask for them. Azure-only settings (``vm_priority``, ``idle_seconds_before_scaledown``…)
        are accepted and ignored."""
        cfg = RayComputeConfiguration("provision", max_nodes=max_nodes, min_nodes=min_nodes,
                                      cpus_per_node=cpus_per_node, gpus_per_node=gpus_per_node,
                                      placement_strategy=placement_strategy, vm_size=vm_size,
                                      queue_timeout_seconds=queue_timeout_seconds)
        cfg.validate()
        return cfg
