"""Launchers: from (job, node rank, hosts, ports) to each process's command and environment."""
from __future__ import annotations

from runyard.config.job import JobSpec
from runyard.errors import ConfigError
from runyard.launchers.api import Launcher, NodeContext, ProcessSpec, script_argv
from runyard.launchers.single import SingleProcessLauncher

# name → (module, class), imported when used; a distributed backend in a job spec names one of these.
_LAUNCHERS: dict[str, tuple[str, str]] = {
    "single": ("runyard.launchers.single", "SingleProcessLauncher"),
    "mpi": ("runyard.launchers.mpi", "MpiLauncher"),
    "ps": ("runyard.launchers.ps", "ParameterServerLauncher"),
    "pytorch": ("runyard.launchers.pytorch", "PyTorchLauncher"),
}


def launcher_for(job: JobSpec) -> Launcher:
    """The launcher a job's ``distributed`` section names (none: one plain process)."""
    name = (job.distributed or {}).get("backend", "single")
    if name not in _LAUNCHERS:
        raise ConfigError(f"unknown distributed backend {name!r}; known: {', '.join(sorted(_LAUNCHERS))}")
    module, cls = _LAUNCHERS[name]
    import importlib

    return getattr(importlib.import_module(module), cls)()


__all__ = ["Launcher", "NodeContext", "ProcessSpec", "SingleProcessLauncher", "launcher_for", "script_argv"]
