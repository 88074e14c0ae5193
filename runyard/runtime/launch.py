"""Starting a node's processes: the one place a launcher is asked for them, and the one loop that starts them.

``node_processes`` is called when a run has its slot (the local supervisor) or its nodes (Ray's driver) — never
at submit time, so the ports a distributed job rendezvouses on are free when it starts, however long it queued.
``start_node`` starts them with the environment merged (the node's, the run's, the launcher's, the node's own
additions), ``$VAR`` expanded, and each rank's output captured — through a FIFO per rank for a process that
starts ranks itself (mpirun).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from runyard import env_vars
from runyard.config.job import JobSpec
from runyard.environments import RUNYARD_PACKAGE, EnvironmentPlan
from runyard.environments.docker import RANK_LABEL, RUN_LABEL, container_name, docker_argv
from runyard.launchers import NodeContext, ProcessSpec, launcher_for
from runyard.launchers.mpi import RANK_LOG_DIR
from runyard.runtime import processes
from runyard.runtime.request import LocalRequest, RunRef, RunRequest
from runyard.runtime.resources import free_ports, gpus_for_slot
from runyard.store.workspace_context import WorkspaceContext



class Sink(Protocol):
    """Where a process's output goes: a RotatingLog (the local supervisor) or a buffer a driver polls (Ray)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def run_environment(workspace: WorkspaceContext, job: JobSpec, run: RunRef, workdir: str | None) -> dict[str, str]:
    """The variables a run's processes get on top of their node's environment (``workdir``: the snapshot's working
    copy on that node, made importable; None where a node adds it itself)."""
    env = {
        **job.environment_variables,
        **workspace.environment_variables(),
        env_vars.RUN_ID: run.run_id,
        env_vars.EXPERIMENT_NAME: run.experiment_name,
        env_vars.AZURE_RUN_ID: run.run_id,
        env_vars.AZURE_EXPERIMENT_NAME: run.experiment_name,
        **({env_vars.PARENT_RUN_ID: run.parent_run_id} if run.parent_run_id else {}),
        "MLFLOW_TRACKING_URI": f"runyard://{workspace.path}",
        "PYTHONUNBUFFERED": "1",
    }
    if workdir is not None:  # the snapshot's root is importable even when the entry script lives in a subfolder
        env["PYTHONPATH"] = with_python_path(workdir)
    return env


def with_python_path(folder: str) -> str:
    """``folder`` first on PYTHONPATH: the snapshot's root is importable even when the entry script is in a subfolder."""
    return os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p)


def expand_vars(value: str, env: Mapping[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` from the run's environment; unknown names stay as written (like os.path.expandvars)."""
    return re.sub(r"\$(\w+)|\$\{([^}]+)\}", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def inherited_env() -> dict[str, str]:
    """The node's environment (the submitter's, for a local run), without another run's identity."""
    drop = {env_vars.RUN_ID, env_vars.PARENT_RUN_ID, env_vars.RANK, "MLFLOW_RUN_ID"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def node_processes(request: RunRequest, node: NodeContext) -> list[ProcessSpec]:
    """The processes node ``node.node_rank`` starts, each with the run's variables under the launcher's."""
    launcher = launcher_for(request.job)
    return [replace(p, env={**request.run_env, **p.env}) for p in launcher.processes(request.job, node)]


def node_context(request: RunRequest, node_rank: int, hosts: Sequence[str], ports: Sequence[Sequence[int]],
                 interpreter: str | None) -> NodeContext:
    """Where one node stands: every node's address and free ports (node 0 first), the interpreter there."""
    return NodeContext(node_rank=node_rank, hosts=tuple(hosts), ports=tuple(ports[node_rank]),
                       peer_ports=tuple(map(tuple, ports)) if len(ports) > 1 else (), interpreter=interpreter,
                       env_names=tuple(request.run_env), as_root=os.geteuid() == 0)


def ports_needed(request: RunRequest) -> int:
    return launcher_for(request.job).ports_needed(request.job)


def in_container(environment: EnvironmentPlan | None, run_id: str, workspace: Mapping[str, str], spec: ProcessSpec,
                 env_names: Sequence[str], workdir: str, gpus: str | None, paths: Sequence[str] = ()) -> ProcessSpec:
    """The process run by ``docker run`` in the environment's image (unchanged when the environment has none): named
    after the run and rank and labelled with the run's id (so that cancel and cleanup find every container), the
    workspace and its stores mounted writable, runyard (the run client) and the environment read-only, ``paths``
    (the node's data inputs) writable."""
    if environment is None or not environment.docker:
        return spec
    read_only = [str(RUNYARD_PACKAGE), *([environment.path] if environment.path else [])]  # the run client
    argv = docker_argv(environment.docker, list(spec.argv), env_names, workdir,
                       mounts=[*store_paths(workspace), *paths], read_only=read_only, gpus=gpus,
                       name=container_name(run_id, spec.rank), labels={RUN_LABEL: run_id, RANK_LABEL: str(spec.rank)})
    return replace(spec, argv=tuple(argv))


def store_paths(workspace: Mapping[str, str]) -> list[str]:
    """The folders a run's client writes in: the workspace's, and its stores' where they are files on this machine."""
    found = [workspace["path"]]
    for uri in (workspace.get("tracking_uri", ""), workspace.get("artifact_uri", "")):
        if uri.startswith("sqlite:///"):
            found.append(os.path.dirname(os.path.abspath(uri[len("sqlite:///"):])))
        elif uri.startswith("file://"):
            found.append(os.path.abspath(uri[len("file://"):]))
        elif uri.startswith("/"):
            found.append(uri)
    return [p for p in dict.fromkeys(found) if p and os.path.isdir(p)]


def this_machine(request: LocalRequest, overrides: Mapping[str, str] = {}) -> list[ProcessSpec]:
    """The processes of a run on this machine (one node), with ports free now, each wrapped in the environment's
    container when it has one (``overrides``: what the node adds — its GPUs, its inputs' paths — passed in too)."""
    python = request.environment.python if request.environment else None
    node = node_context(request, 0, ("127.0.0.1",), [free_ports(ports_needed(request))], python)
    return in_containers(request.environment, request.run_id, request.workspace, node_processes(request, node),
                         overrides, request.workdir)


def in_containers(environment: EnvironmentPlan | None, run_id: str, workspace: Mapping[str, str],
                  specs: Sequence[ProcessSpec], overrides: Mapping[str, str], workdir: str,
                  paths: Sequence[str] = ()) -> list[ProcessSpec]:
    """A node's processes, each in a container when the environment has an image: ``overrides`` (what the node
    decides: its GPUs, its data inputs) passed too, the inputs' paths and ``paths`` mounted writable."""
    inputs = [v for v in overrides.values() if v.startswith("/") and os.path.exists(v)]
    return [in_container(environment, run_id, workspace, spec, [*spec.env, *overrides], workdir,
                         overrides.get("CUDA_VISIBLE_DEVICES"), [*paths, *inputs]) for spec in specs]


def slot_gpu_env(request: LocalRequest, slot: int) -> dict[str, str]:
    """The GPUs of queue slot ``slot`` as the variables every process of a run there gets (none off the GPU pool)."""
    if not request.gpus or request.pool != "gpu":
        return {}
    mine = ",".join(gpus_for_slot(list(request.gpus), slot, request.capacity))
    return {"CUDA_VISIBLE_DEVICES": mine, env_vars.VISIBLE_GPUS: mine}


def preview(request: RunRequest) -> list[ProcessSpec]:
    """What a run on this machine would start were it started now in the first queue slot (``runyard submit
    --dry-run``): the call its supervisor makes when the run gets its slot, which asks again then. Empty where the
    nodes are not known before the run starts (a cluster's) or the run is another kind's (a sweep's driver)."""
    if not isinstance(request, LocalRequest) or request.kind != "script":
        return []
    return this_machine(request, slot_gpu_env(request, 0))


@dataclass
class StartFailed(Exception):
    """A process could not be started (its program is missing, not executable…)."""

    rank: int
    program: str
    reason: OSError

    def __str__(self) -> str:
        return f"cannot start rank {self.rank} ({self.program}): {self.reason}"


@dataclass
class Node:
    """The processes one node started, and the FIFOs of ranks a launcher process starts itself."""

    procs: list[processes.Captured]
    pipes: list[processes.RankPipe]


def start_node(node: Node, specs: Sequence[ProcessSpec], base_env: Mapping[str, str], overrides: Mapping[str, str],
               workdir: Path, fifo_dir: Path, sink: Callable[[str], Any],
               say: Callable[[str], None] = lambda line: None) -> None:
    """Start ``specs`` in ``workdir``: each with ``base_env`` under its own variables and ``overrides`` (what this
    node decides: its GPUs, its data inputs' paths) over them, ``$VAR`` expanded in its arguments, its output into ``sink(key)`` (key: the rank, or "launcher" for a process that starts ranks, whose
    ranks' output arrives through FIFOs in ``fifo_dir`` into ``sink(rank)``) — each added to ``node`` as it starts.
    Raises StartFailed; ``node`` then holds the processes started before (the caller stops them)."""
    for spec in specs:
        env = {**base_env, **spec.env, **overrides}
        if spec.rank_logs:
            fifo_dir.mkdir(exist_ok=True)
            env[RANK_LOG_DIR] = str(fifo_dir)
            node.pipes += [processes.RankPipe(fifo_dir / str(r), sink(str(r)), r) for r in spec.rank_logs]
            out = sink("launcher")
        else:
            out = sink(str(spec.rank))
        argv = [expand_vars(a, env) for a in spec.argv]
        say(f"rank {spec.rank}" + (f" ({spec.role})" if spec.role != "main" else "")
            + (f", starting ranks {spec.rank_logs[0]}-{spec.rank_logs[-1]}" if spec.rank_logs else "")
            + f": {' '.join(argv)}")
        try:
            proc = processes.start(argv, env, workdir, out, spec.rank)
        except OSError as exc:
            raise StartFailed(spec.rank, argv[0], exc) from exc
        proc.role, proc.rank_logs = spec.role, list(spec.rank_logs)
        node.procs.append(proc)
