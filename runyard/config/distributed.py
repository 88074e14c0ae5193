"""Distributed job configurations (Azure ML v1 shapes): how many processes, and which launcher starts them.

    ScriptRunConfig(..., distributed_job_config=MpiConfiguration(process_count_per_node=2))
    ScriptRunConfig(..., distributed_job_config=TensorflowConfiguration(worker_count=2, parameter_server_count=1, chief=True))
    ScriptRunConfig(..., distributed_job_config=PyTorchConfiguration(communication_backend="Gloo", process_count=4))
    TensorFlow(..., distributed_training=Mpi(process_count_per_node=2)); PyTorch(..., distributed_training=Gloo())
    Estimator(..., node_count=1, process_count_per_node=4, distributed_backend="mpi")

Each becomes ``(node_count, process_count_per_node, {"backend": ..., options})`` in the job spec; the launcher
named by ``backend`` (``runyard/launchers``) turns it into each process's command and environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runyard.errors import ConfigError, ValidationError


def _count(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{what} must be a whole number >= {minimum}, got {value!r}")
    return value


@dataclass
class MpiConfiguration:
    """``process_count_per_node`` processes on each of ``node_count`` nodes, started by Open MPI's ``mpirun``
    (Horovod and mpi4py scripts)."""

    process_count_per_node: int = 1
    node_count: int = 1

    def to_distributed(self) -> tuple[int, int, dict[str, Any]]:
        return (_count(self.node_count, "node_count"), _count(self.process_count_per_node, "process_count_per_node"),
                {"backend": "mpi"})


@dataclass
class TensorflowConfiguration:
    """TensorFlow's native parameter-server layout: ``worker_count`` workers, ``parameter_server_count`` ps tasks and,
    with ``chief=True``, a chief (the coordinator of TF2's ``ParameterServerStrategy``). Each task gets its own
    ``TF_CONFIG``. With a chief the run ends when the chief does; without one, when every worker has."""

    worker_count: int = 1
    parameter_server_count: int = 1
    chief: bool = False
    node_count: int = 1

    def to_distributed(self) -> tuple[int, int, dict[str, Any]]:
        workers = _count(self.worker_count, "worker_count")
        ps = _count(self.parameter_server_count, "parameter_server_count", minimum=0)
        nodes = _count(self.node_count, "node_count")
        tasks = workers + ps + bool(self.chief)
        if tasks % nodes:
            raise ConfigError(f"{tasks} TensorFlow tasks (workers, ps, chief) cannot be spread evenly over {nodes} nodes")
        return nodes, tasks // nodes, {"backend": "ps", "worker_count": workers, "parameter_server_count": ps,
                                       "chief": bool(self.chief)}


@dataclass
class PyTorchConfiguration:
    """PyTorch distributed (DDP): ``process_count`` processes in all (default: one per node), each with the variables
    torchrun sets (MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK).
    ``communication_backend``: "Gloo" (CPU), "Nccl" (GPUs), or None (NCCL with use_gpu, else Gloo)."""

    communication_backend: str | None = None
    process_count: int | None = None
    node_count: int = 1

    def to_distributed(self) -> tuple[int, int, dict[str, Any]]:
        nodes = _count(self.node_count, "node_count")
        total = _count(self.process_count, "process_count") if self.process_count is not None else nodes
        if total % nodes:
            raise ConfigError(f"process_count={total} cannot be spread evenly over node_count={nodes}")
        backend = self.communication_backend
        if backend is not None and str(backend).lower() not in ("gloo", "nccl", "mpi"):
            raise ConfigError(f"communication_backend must be 'Gloo', 'Nccl' or 'MPI', got {backend!r}")
        return nodes, total // nodes, {"backend": "pytorch",
                                       "communication_backend": str(backend).lower() if backend else None}


# -- Azure ML's older shorthands (azureml.train.dnn) ---------------------------------------------------------
def Mpi(process_count_per_node: int = 1) -> MpiConfiguration:  # noqa: N802 - Azure ML's name
    return MpiConfiguration(process_count_per_node=process_count_per_node)


def ParameterServer(worker_count: int = 1, parameter_server_count: int = 1) -> TensorflowConfiguration:  # noqa: N802
    return TensorflowConfiguration(worker_count=worker_count, parameter_server_count=parameter_server_count)


def Gloo(process_count: int | None = None) -> PyTorchConfiguration:  # noqa: N802
    return PyTorchConfiguration(communication_backend="Gloo", process_count=process_count)


def Nccl(process_count: int | None = None) -> PyTorchConfiguration:  # noqa: N802
    return PyTorchConfiguration(communication_backend="Nccl", process_count=process_count)


_BACKEND_NAMES = {"mpi": "mpi", "horovod": "mpi", "ps": "ps", "parameterserver": "ps", "parameter_server": "ps",
                  "pytorch": "pytorch", "gloo": "pytorch", "nccl": "pytorch", "ddp": "pytorch"}


def resolve(
    config: Any = None,
    *,
    distributed_backend: Any = None,
    node_count: int = 1,
    process_count_per_node: int = 1,
    worker_count: int | None = None,
    parameter_server_count: int | None = None,
) -> tuple[int, int, dict[str, Any] | None]:
    """(node_count, process_count_per_node, launcher section) from a configuration object or the Estimator's
    ``distributed_backend`` string/object with its counts."""
    if config is not None and distributed_backend is not None:
        raise ConfigError("give either distributed_training/distributed_job_config or distributed_backend, not both")
    config = config if config is not None else distributed_backend
    if config is None:
        if worker_count is not None or parameter_server_count is not None:
            raise ConfigError("worker_count/parameter_server_count need distributed_backend='ps'")
        return node_count, process_count_per_node, None
    if isinstance(config, str):
        name = _BACKEND_NAMES.get(config.strip().lower())
        if name is None:
            raise ConfigError(f"unknown distributed_backend {config!r}; use 'mpi', 'ps' or 'pytorch' "
                              "(or an MpiConfiguration, TensorflowConfiguration, PyTorchConfiguration)")
        if name == "mpi":
            config = MpiConfiguration(process_count_per_node, node_count)
        elif name == "ps":
            config = TensorflowConfiguration(worker_count if worker_count is not None else 1,
                                             parameter_server_count if parameter_server_count is not None else 1,
                                             node_count=node_count)
        else:
            backend = config.strip().lower() if config.strip().lower() in ("gloo", "nccl") else None
            config = PyTorchConfiguration(backend, node_count * process_count_per_node, node_count)
    config = _with_estimator_counts(config, node_count, process_count_per_node)
    to_distributed = getattr(config, "to_distributed", None)
    if to_distributed is None:
        raise ValidationError(f"distributed configuration must be an MpiConfiguration, TensorflowConfiguration or "
                              f"PyTorchConfiguration, got {type(config).__name__}")
    return to_distributed()


def _with_estimator_counts(config: Any, node_count: int, process_count_per_node: int) -> Any:
    """``PyTorch(node_count=2, process_count_per_node=2, distributed_training=PyTorchConfiguration())``: counts given to
    the estimator fill the ones the configuration left at their defaults (Azure's estimators work this way)."""
    import dataclasses

    if not dataclasses.is_dataclass(config) or (node_count, process_count_per_node) == (1, 1):
        return config
    changes: dict[str, Any] = {}
    if getattr(config, "node_count", None) == 1 and node_count != 1:
        changes["node_count"] = node_count
    if isinstance(config, PyTorchConfiguration) and config.process_count is None:
        changes["process_count"] = node_count * process_count_per_node
    if isinstance(config, MpiConfiguration) and config.process_count_per_node == 1:
        changes["process_count_per_node"] = process_count_per_node
    return dataclasses.replace(config, **changes) if changes else config


BACKENDS = ("mpi", "ps", "pytorch")


def check_section(section: Any, node_count: int, process_count_per_node: int) -> None:
    """A job's launcher section against its counts (also one given as a dict, e.g. from a stored definition)."""
    if not isinstance(section, dict) and not hasattr(section, "get"):
        raise ValidationError(f"distributed must be a launcher section such as {{'backend': 'mpi'}}, got {section!r}")
    backend = section.get("backend")
    if backend not in BACKENDS:
        raise ConfigError(f"unknown distributed backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend == "ps":
        workers = _count(section.get("worker_count", 1), "worker_count")
        ps = _count(section.get("parameter_server_count", 1), "parameter_server_count", minimum=0)
        tasks = workers + ps + bool(section.get("chief"))
        if tasks != node_count * process_count_per_node:
            raise ConfigError(f"{tasks} TensorFlow tasks (workers, ps, chief) but node_count={node_count} × "
                              f"process_count_per_node={process_count_per_node} processes: they must be equal")
    if backend == "pytorch":
        comm = section.get("communication_backend")
        if comm is not None and str(comm).lower() not in ("gloo", "nccl", "mpi"):
            raise ConfigError(f"communication_backend must be 'Gloo', 'Nccl' or 'MPI', got {comm!r}")


__all__ = ["BACKENDS", "Gloo", "Mpi", "MpiConfiguration", "Nccl", "ParameterServer", "PyTorchConfiguration",
           "TensorflowConfiguration", "check_section", "resolve"]
