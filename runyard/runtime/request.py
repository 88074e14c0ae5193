"""The request that carries a job from submission to the runtime: typed and frozen, turned into JSON here only.

A compute target's ``dryrun`` builds one (no side effects: it can be printed and unit-tested), ``schedule`` hands it
to the runtime — the local target writes it as ``request.json`` beside the run's supervisor, the Ray target passes
it to the run's driver — and the runtime reads it back with :func:`read_request`. Each target kind has its own
request type, holding the same ``JobSpec`` and what that target adds (a queue slot, a placement group).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from runyard.config.job import JobSpec
from runyard.environments import EnvironmentPlan
from runyard.errors import ConfigError

REQUEST_FILE = "request.json"


class RunRef(NamedTuple):
    """The run a job is submitted as (already recorded in the metadata store, status Queued)."""

    run_id: str
    experiment_name: str
    parent_run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What every target's runtime needs to execute one run."""

    type: ClassVar[str] = "run"

    target: str  # the compute target's name
    run: RunRef
    workspace: Mapping[str, str]  # WorkspaceContext.ref(): path, tracking_uri, artifact_uri
    job: JobSpec
    snapshot_id: str | None
    environment: EnvironmentPlan | None
    settings: Mapping[str, Any]  # the target's options, resolved (TargetOption)
    run_env: Mapping[str, str]  # variables every process of the run gets: its identity, the workspace, the job's own
    submitted_ns: int
    kind: str = "script"  # a run kind (runtime.kinds): "script" runs the job's processes; "sweep" drives trials
    launcher: str = "single"  # the launcher the runtime asks for each node's processes when the run starts
    extra: Mapping[str, Any] = field(default_factory=dict)  # what a run kind adds (a sweep: its configuration)
    notes: tuple[str, ...] = ()  # what the target decided that the run's log should say (a CPU fallback)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    # -- JSON: the one place a request is converted ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            out[f.name] = _to_json(getattr(self, f.name))
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def __str__(self) -> str:
        return self.to_json(indent=2)


def _to_json(value: Any) -> Any:
    if isinstance(value, JobSpec):
        return value.to_definition()
    if isinstance(value, EnvironmentPlan):
        return value.to_dict()
    if isinstance(value, RunRef):
        return value._asdict()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class LocalRequest(RunRequest):
    """A run of the local target (and of an AmlCompute pool of this machine): its folder and its queue slot."""

    type: ClassVar[str] = "local"

    run_dir: str
    workdir: str  # the snapshot's working copy
    pool: str  # the queue it waits in: cpu, gpu, pool-<name>, sweep
    capacity: int
    gpus: tuple[str, ...] = ()  # the GPUs of the gpu pool, shared out by slot


@dataclass(frozen=True, kw_only=True)
class RayRequest(RunRequest):
    """A run of a Ray target: the placement its driver asks the cluster for."""

    type: ClassVar[str] = "ray"

    bundle: Mapping[str, float]  # what each node of the job holds
    strategy: str  # placement group strategy
    dashboard: str
    driver_python: str  # the interpreter that runs the driver on the head node
    nodes_now: int  # the cluster's nodes when the run was submitted


_TYPES: dict[str, type[RunRequest]] = {cls.type: cls for cls in (RunRequest, LocalRequest, RayRequest)}


def request_from_dict(data: Mapping[str, Any]) -> RunRequest:
    cls = _TYPES.get(data.get("type", "run"))
    if cls is None:
        raise ConfigError(f"unknown run request type {data.get('type')!r}; known: {', '.join(_TYPES)}")
    missing = [f.name for f in fields(cls) if f.name not in data and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        raise ConfigError(f"the run request is incomplete: it has no {', '.join(missing)}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name == "job":
            value = JobSpec.from_definition(value)
        elif f.name == "environment":
            value = EnvironmentPlan.from_dict(value) if value else None
        elif f.name == "run":
            value = RunRef(**value)
        elif f.name in ("gpus", "notes"):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def read_request(run_dir: Path) -> RunRequest:
    return request_from_dict(json.loads((run_dir / REQUEST_FILE).read_text(encoding="utf-8")))


def write_request(run_dir: Path, request: RunRequest) -> None:
    (run_dir / REQUEST_FILE).write_text(request.to_json(indent=2), encoding="utf-8")
