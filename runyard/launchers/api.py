"""The launcher interface: pure functions from a job and a node's place in it to each process's command and env.

A compute target asks the launcher what to start on each node; the launcher never starts anything itself, so
it is unit-tested as a pure function and shared by every target (local now, Ray later).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from runyard import env_vars
from runyard.config.job import JobSpec


@dataclass(frozen=True)
class NodeContext:
    """Where one node stands in a job: its rank, every node's address (node 0 first), ports free on it, and the
    interpreter of the job's environment there (None: the job's own, for a user-managed environment)."""

    node_rank: int = 0
    hosts: tuple[str, ...] = ("127.0.0.1",)
    ports: tuple[int, ...] = ()  # free on this node
    # Every node's free ports, node 0 first (several nodes: a task's address is its own node's host and port).
    peer_ports: tuple[tuple[int, ...], ...] = ()
    interpreter: str | None = None
    env_names: tuple[str, ...] = ()  # variables the target sets for every process (forwarded by mpirun's -x)
    as_root: bool = False  # the processes run as root (mpirun then needs --allow-run-as-root)

    def ports_of(self, node_rank: int) -> tuple[int, ...]:
        """The free ports of node ``node_rank`` (this node's own when no peers are known: a one-node job)."""
        if self.peer_ports:
            return self.peer_ports[node_rank]
        if node_rank != self.node_rank:
            raise ValueError(f"the ports of node {node_rank} are not known to node {self.node_rank}")
        return self.ports


@dataclass(frozen=True)
class ProcessSpec:
    """One process to start: its global rank, rank on its node, command line, and the variables it adds."""

    rank: int
    local_rank: int
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    # "main": the job's result depends on it; "service": stopped once every main process has ended well (TF ps
    # tasks, and workers when a chief coordinates).
    role: str = "main"
    # Ranks this process starts itself (mpirun): each writes its output to the FIFO $RUNYARD_RANK_LOG_DIR/<rank>,
    # which the supervisor reads into that rank's log; the process's own output goes to the launcher's log.
    rank_logs: tuple[int, ...] = ()


class Launcher(ABC):
    """Turns a job into the processes of one node."""

    name: str

    @abstractmethod
    def processes(self, job: JobSpec, node: NodeContext) -> list[ProcessSpec]:
        """The processes node ``node.node_rank`` starts (may be none, e.g. when node 0's ``mpirun`` starts all)."""

    def ports_needed(self, job: JobSpec) -> int:
        """How many free ports each node must reserve for this job (rendezvous, TF_CONFIG addresses of its tasks)."""
        return 0

    def check(self, job: JobSpec) -> None:
        """Raise ConfigError when this machine cannot start the job (a missing tool), before anything runs."""


def rank_env(rank: int) -> dict[str, str]:
    """What names a process's rank: runyard's variable and Azure ML's (``AZ_BATCHAI_TASK_INDEX``)."""
    return {env_vars.RANK: str(rank), env_vars.AZURE_TASK_INDEX: str(rank)}


def script_argv(job: JobSpec, node: NodeContext | None = None) -> tuple[str, ...]:
    """``python -u ENTRY_SCRIPT ARGS…``: unbuffered, so output reaches the live log as it is printed."""
    interpreter = node.interpreter if node is not None and node.interpreter else job.interpreter
    return (interpreter, "-u", job.entry_script, *job.arguments)
