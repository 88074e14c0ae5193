"""The compute-target interface (after torchx's Scheduler): one shape for every place a run can execute.

``submit()`` is a template method: ``dryrun()`` builds the backend's request without side effects (printable,
unit-testable), ``schedule()`` sends it. ``describe()``, ``cancel()`` and ``log_iter()`` complete the contract,
which ``tests/integration/test_compute_contract.py`` checks for every target.
"""
from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from runyard.config.job import JobSpec
from runyard.errors import ConfigError

if TYPE_CHECKING:
    from runyard.submission.environments import EnvironmentPlan
    from runyard.submission.snapshot import Snapshot
    from runyard.workspace import Workspace


@dataclass(frozen=True)
class TargetOption:
    """A setting a target declares: read from the workspace config (``compute.<target>.<name>``), then ``env``."""

    name: str
    type: type
    default: Any
    help: str
    env: str | None = None


def _option(name: str, type_: type, default: Any, help_: str, env_name: str | None) -> TargetOption:
    from runyard import env_vars

    return TargetOption(name, type_, default, help_, getattr(env_vars, env_name) if env_name else None)


# Settings every target that runs processes has (the local one also reads them from RUNYARD_* variables).
LOG_MAX_MB = _option("log_max_mb", float, 100.0,
                     "size of a captured log file before it is rotated (2 older parts are kept)", "LOG_MAX_MB")
KILL_GRACE = _option("kill_grace_seconds", float, 3.0,
                     "after SIGTERM, seconds before SIGKILL when a run is canceled or times out", "KILL_GRACE")


class RunRef(NamedTuple):
    """The run a job is submitted as (already recorded in the metadata store, status Queued)."""

    run_id: str
    experiment_name: str
    parent_run_id: str | None = None


@dataclass(frozen=True)
class SubmitRequest:
    """What ``schedule()`` sends: the backend-native payload for one run (JSON-ready)."""

    target: str
    run_id: str
    payload: Mapping[str, Any]

    def __str__(self) -> str:
        return json.dumps({"target": self.target, "run_id": self.run_id, **self.payload}, indent=2, default=str)


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

    def __new__(cls, workspace: "Workspace" = None, name: str = None, *args: Any, **kwargs: Any):  # type: ignore[assignment]
        if cls is ComputeTarget:
            from runyard.compute import get_target

            return get_target(workspace, name)
        return super().__new__(cls)

    @staticmethod
    def create(workspace: "Workspace", name: str, provisioning_configuration: Any) -> "ComputeTarget":
        """Register a target from ``RayCompute.provisioning_configuration(...)`` / ``.attach_configuration(...)``."""
        from runyard.compute import registry

        return registry.create(workspace, name, provisioning_configuration)

    def get_status(self) -> Any:
        """The target's state (``.serialize()`` for a dict)."""
        from runyard.compute import registry

        return registry.local_status()

    def wait_for_completion(self, show_output: bool = False, min_node_count: int | None = None,
                            timeout_in_minutes: float = 20) -> Any:
        """Wait until the target is up (with ``min_node_count`` nodes); returns its status."""
        from runyard.compute import registry

        return registry.wait_until_up(self, show_output, min_node_count, timeout_in_minutes)

    def delete(self) -> None:
        """Stop what the target runs (a cluster runyard started) and remove it from the workspace."""
        from runyard.compute import registry

        registry.delete(self)

    def __init__(self, workspace: "Workspace", name: str) -> None:
        self.workspace = workspace
        self.name = name
        self.settings = self._resolve_options()

    # -- the contract ----------------------------------------------------------------------------
    def dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot",
               environment: "EnvironmentPlan | None" = None) -> SubmitRequest:
        """Validate the job for this target and build its request; nothing is started or written.

        The environment is planned here unless given (its key, whether it is built, how to build it), so every
        target gets the same answer and a bad package list fails before anything is stored.
        """
        return self._dryrun(job, run, snapshot, environment or self.plan_environment(job))

    def plan_environment(self, job: JobSpec) -> "EnvironmentPlan":
        from runyard.submission import environments

        return environments.plan(environments.env_root(self.workspace), dict(job.environment), job.use_gpu,
                                 self.workspace.tracking_uri)

    def submit(self, job: JobSpec, run: RunRef, snapshot: "Snapshot") -> str:
        """Build the request and send it; the run record and snapshot must already be stored."""
        return self.schedule(self.dryrun(job, run, snapshot))

    @abstractmethod
    def _dryrun(self, job: JobSpec, run: RunRef, snapshot: "Snapshot", environment: "EnvironmentPlan") -> SubmitRequest:
        ...

    @abstractmethod
    def schedule(self, request: SubmitRequest) -> str:
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


def run_environment(workspace: "Workspace", job: JobSpec, run: RunRef, workdir: str | None) -> dict[str, str]:
    """The variables a run's processes get on top of their node's environment (``workdir``: the snapshot's working
    copy on that node, made importable; None where a node adds it itself)."""
    from runyard import env_vars

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
    return os.pathsep.join(p for p in (folder, os.environ.get("PYTHONPATH", "")) if p)


# Captured output of rank N is logs/user_log_N.txt; past its cap it is rotated to user_log_N.1.txt, .2.txt …
# (logfiles.rotated_path; the highest number is the oldest part).
def user_log_name(rank: int) -> str:
    return f"logs/user_log_{rank}.txt"


def ordered_log_names(names: list[str], rank: int) -> list[str]:
    """The parts of a rank's log among ``names`` (paths like ``logs/user_log_0.1.txt``), oldest first."""
    import re

    pattern = re.compile(rf"^logs/user_log_{rank}(?:\.(\d+))?\.txt$")
    parts = [(int(m.group(1) or 0), n) for n in names if (m := pattern.match(n))]
    return [n for _, n in sorted(parts, reverse=True)]


def stored_log(workspace: "Workspace", run_id: str, rank: int) -> Iterator[str]:
    """A finished run's log of one rank, read from the artifact store."""
    names = ordered_log_names([a.path for a in workspace.metadata.list_artifacts(run_id, "logs")], rank)
    for name in names:
        yield from stored_text(workspace, run_id, name)


BUILD_LOG_NAME = "logs/runyard/environment_build.txt"


def stored_text(workspace: "Workspace", run_id: str, name: str) -> Iterator[str]:
    """One stored file of a run as text chunks; nothing when the run has no such file."""
    from runyard.submission.logfiles import decode_chunks

    if not any(a.path == name for a in workspace.metadata.list_artifacts(run_id, name.rsplit("/", 1)[0])):
        return
    with workspace.artifacts.open(run_id, name) as f:
        yield from decode_chunks(iter(lambda f=f: f.read(1 << 16), b""))
