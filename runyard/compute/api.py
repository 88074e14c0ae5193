"""The compute-target interface (after torchx's Scheduler): one shape for every place a run can execute.

``submit()`` is a template method: ``dryrun()`` builds the backend's request without side effects (printable,
unit-testable), ``schedule()`` sends it. ``describe()``, ``cancel()`` and ``log_iter()`` complete the contract,
which ``tests/integration/test_compute_contract.py`` checks for every target.
"""
from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from runyard import env_vars, environments
from runyard.config.job import JobSpec
from runyard.environments import EnvironmentPlan
from runyard.errors import ComputeError, ConfigError
from runyard.runtime.logfiles import BUILD_LOG_NAME, stored_log, stored_text
from runyard.runtime.request import RunRef, RunRequest
from runyard.store.workspace_context import WorkspaceContext

if TYPE_CHECKING:
    from runyard.store.snapshots import Snapshot

BUILTIN_NAMES = ("local",)
SubmitRequest = RunRequest  # what ``dryrun`` builds and ``schedule`` sends: a request type per target kind


@dataclass(frozen=True)
class TargetOption:
    """A setting a target declares: read from the workspace config (``compute.<target>.<name>``), then ``env``."""

    name: str
    type: type
    default: Any
    help: str
    env: str | None = None


def flag(raw: Any) -> bool:
    """A yes/no setting as config files and variables spell it (true/false, 1/0, yes/no, on/off)."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a yes/no value: {raw!r}")


def _option(name: str, type_: type, default: Any, help_: str, env_name: str | None) -> TargetOption:
    return TargetOption(name, type_, default, help_, getattr(env_vars, env_name) if env_name else None)


# Settings every target that runs processes has (the local one also reads them from RUNYARD_* variables).
LOG_MAX_MB = _option("log_max_mb", float, 100.0,
                     "size of a captured log file before it is rotated (2 older parts are kept)", "LOG_MAX_MB")
KILL_GRACE = _option("kill_grace_seconds", float, 3.0,
                     "after SIGTERM, seconds before SIGKILL when a run is canceled or times out", "KILL_GRACE")
REQUIRE_GPU = _option("require_gpu", flag, False,
                      "refuse use_gpu=True runs while the target has no GPU (default: run them on the CPU, with a "
                      "warning, as Azure's GPU images do on a CPU node)", "REQUIRE_GPU")
CPU_FALLBACK = ("use_gpu=True but {where} has no GPU: the run trains on the CPU (the environment's CPU package "
                "variants, no GPU for its processes, gloo for PyTorch DDP)")


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


@dataclass(frozen=True)
class RunDescription:
    """What a target observes about a run it executes."""

    run_id: str
    target: str
    status: str
    details: Mapping[str, Any] = field(default_factory=dict)


class ComputeTarget(ABC):
    """Where runs execute. Subclasses implement the underscored hooks and declare ``options``.

    As in Azure ML, ``ComputeTarget(ws, name)`` returns the workspace's target of that name (``local``, or one made
    with ``ComputeTarget.create``) and raises ``ComputeTargetNotFound`` when there is none.
    """

    type: ClassVar[str]
    options: ClassVar[tuple[TargetOption, ...]] = ()
    # runyard.compute.registry, which imports the targets (this module must not): it sets itself here when the
    # package runyard.compute is imported, which any import of this module does first.
    registry: ClassVar[Any] = None

    def __new__(cls, workspace: "WorkspaceContext" = None, name: str = None, *args: Any, **kwargs: Any):  # type: ignore[assignment]
        if cls is ComputeTarget:
            return ComputeTarget.registry.get_target(workspace, name)
        return super().__new__(cls)

    @staticmethod
    def create(workspace: "WorkspaceContext", name: str, provisioning_configuration: Any) -> "ComputeTarget":
        """Register a target from ``RayCompute.provisioning_configuration(...)`` / ``.attach_configuration(...)``."""
        return ComputeTarget.registry.create(workspace, name, provisioning_configuration)

    def get_status(self) -> "ComputeStatus":
        """The target's state (``.serialize()`` for a dict)."""
        return local_status()

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 20) -> "ComputeStatus":
        """Wait until the target is up (with ``min_node_count`` nodes); returns its status."""
        return wait_until_up(self, show_output, min_node_count, timeout_in_minutes)

    def delete(self) -> None:
        """Stop what the target runs (a cluster runyard started) and remove it from the workspace."""
        if self.name in BUILTIN_NAMES:
            raise ConfigError(f"{self.name!r} is built in and cannot be deleted")
        stop = getattr(self, "stop_cluster", None)
        if stop is not None:
            stop()
        self.workspace.metadata.delete_compute_target(self.name)

    def __init__(self, workspace: "WorkspaceContext", name: str) -> None:
        self.workspace = workspace
        self.name = name
        self.settings = self._resolve_options()

    # -- the contract ----------------------------------------------------------------------------
    def dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot | None",
               environment: "EnvironmentPlan | None" = None, *, kind: str = "script",
               extra: Mapping[str, Any] | None = None) -> RunRequest:
        """Validate the job for this target and build its typed request; nothing is started, written or sent.

        The environment is planned here unless given (its key, whether it is built, how to build it), so every
        target gets the same answer and a bad package list fails before anything is stored. The launcher is not
        asked for processes here: the runtime does that when the run gets its slot. ``kind``: a run kind other than
        "script" (a sweep's driver) where the target can drive one.
        """
        job = self.layout(job)
        return self._dryrun(job, run, snapshot, environment or self.plan_environment(job), kind=kind,
                            extra=dict(extra or {}))

    def admit(self, request: RunRequest) -> RunRequest:
        """Check the request against the backend as it is now (a cluster's nodes), before anything is stored; returns
        the request completed with what it learned. Reads only; the base version has nothing to ask."""
        return request

    def layout(self, job: JobSpec) -> JobSpec:
        """The job as this target places it on nodes: the job itself, unless a target folds its nodes onto fewer
        (``JobSpec.on_one_node``) — an explicit step that a target declares here, never a rewrite in its dryrun."""
        return job

    def on_cpu_instead(self, job: JobSpec, has_gpus: bool, where: str) -> str | None:
        """A use_gpu=True job where the target has no GPU runs on the CPU: the note to warn with and to put in the
        run's log, or None when the job is not such a job; a ComputeError when the target requires a GPU."""
        if not job.use_gpu or has_gpus:
            return None
        if self.settings.get("require_gpu"):
            raise ComputeError(
                f"use_gpu=True but {where} has no GPU and compute target {self.name!r} requires one "
                f"({env_vars.REQUIRE_GPU}=1 or compute.{self.name}.require_gpu) — submit with use_gpu=False, to a "
                "compute target with GPUs, or unset it to run on the CPU")
        import warnings

        from runyard.errors import RunyardWarning

        note = CPU_FALLBACK.format(where=where)
        warnings.warn(f"{note} (set {env_vars.REQUIRE_GPU}=1 to refuse such runs)", RunyardWarning, stacklevel=2)
        return note

    def plan_environment(self, job: JobSpec) -> EnvironmentPlan:
        return environments.plan(environments.env_root(self.workspace), dict(job.environment), job.use_gpu,
                                 self.workspace.tracking_uri, mpi=bool(job.distributed)
                                 and job.distributed.get("backend") == "mpi")

    def submit(self, job: JobSpec, run: RunRef, snapshot: "Snapshot") -> str:
        """Build the request, check it against the backend and send it; the run record and snapshot must already be
        stored (``runyard.submission`` runs the same steps, recording the run between admit and schedule)."""
        return self.schedule(self.admit(self.dryrun(job, run, snapshot)))

    @abstractmethod
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot | None", environment: EnvironmentPlan,
                kind: str, extra: dict[str, Any]) -> RunRequest:
        ...

    def _other_kind(self, kind: str) -> ComputeError:
        return ComputeError(f"compute target {self.name!r} ({self.type}) cannot drive a {kind} run")

    @abstractmethod
    def schedule(self, request: RunRequest) -> str:  # takes what ``admit`` returned
        """Start the run described by ``request``; return its run id. The run continues if the caller exits."""

    @abstractmethod
    def describe(self, run_id: str) -> RunDescription | None:
        """What the target knows of the run; None for a run it never executed."""

    @abstractmethod
    def cancel(self, run_id: str, wait: float = 10.0) -> None:
        """Stop the run's whole process tree and mark it Canceled; a no-op on a finished run (idempotent)."""

    def log_iter(self, run_id: str, rank: int = 0, follow: bool = False) -> Iterator[str]:
        """The output of one rank of a run, as text chunks; with ``follow`` until the run ends.

        The base version reads the logs a finished run uploaded; targets that can see a live run override it.
        """
        yield from stored_log(self.workspace, run_id, rank)

    def build_log_iter(self, run_id: str, follow: bool = False) -> Iterator[str]:
        """The log of the run's environment build (empty when the environment was already built)."""
        yield from stored_text(self.workspace, run_id, BUILD_LOG_NAME)

    # -- helpers ----------------------------------------------------------------------------------
    def _resolve_options(self) -> dict[str, Any]:
        configured = self.workspace.compute_settings(self.name)
        unknown = set(configured) - {o.name for o in self.options}
        if unknown:
            raise ConfigError(
                f"compute target {self.name!r}: unknown setting(s) {', '.join(sorted(unknown))} in the workspace "
                f"config; known: {', '.join(o.name for o in self.options)}"
            )
        settings = {}
        for opt in self.options:
            from_env = os.environ.get(opt.env) if opt.env else None  # the environment wins over config.json
            raw = from_env if from_env else configured.get(opt.name, opt.default)
            try:
                settings[opt.name] = opt.type(raw) if raw is not None else None
            except (TypeError, ValueError):
                source = f"${opt.env}" if from_env else f"compute.{self.name}.{opt.name}"
                raise ConfigError(f"{source}={raw!r} is not a valid {opt.type.__name__} ({opt.help})") from None
        return settings

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def local_status() -> ComputeStatus:
    from runyard.runtime.resources import gpu_ids

    return ComputeStatus("Succeeded", 1, float(os.cpu_count() or 1), float(len(gpu_ids())),
                         [{"node_id": "local", "ip": "127.0.0.1", "head": True}])


def wait_until_up(target: ComputeTarget, show_output: bool, min_node_count: int | None,
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
