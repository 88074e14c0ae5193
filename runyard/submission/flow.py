"""The one submit path, for every target and run kind: validate → snapshot → record the run (Queued) → schedule.

``Experiment.submit`` and a sweep's driver (each trial) come through here, and so does the sweep itself: a run
configuration that asks for a run kind of its own (``RunKind``) is recorded and scheduled like any run, and the
runtime hands its request to that kind's driver.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard import plugins, validation
from runyard.compute import ComputeTarget, RunRef, get_target
from runyard.config.job import JobSpec
from runyard.environments import EnvironmentPlan
from runyard.errors import RunyardWarning, ValidationError
from runyard.ids import new_run_id
from runyard.runtime.request import RunRequest
from runyard.status import RunStatus
from runyard.store import snapshots
from runyard.store.metadata.entities import RunInfo
from runyard.store.snapshots import Snapshot
from runyard.store.workspace_context import WorkspaceContext


@dataclass(frozen=True)
class RunKind:
    """A run that a driver of its own executes instead of the job's processes (a sweep): what it records and what
    its driver gets. Its driver runs on this machine (the local target); the job is what its work runs (trials)."""

    kind: str  # a run kind its package registers (plugins.RUN_KINDS)
    run_type: str  # recorded as the run's type
    extra: Mapping[str, Any] = field(default_factory=dict)  # handed to the driver in the request
    definition: Mapping[str, Any] = field(default_factory=dict)  # recorded with the job's, as the run definition
    properties: Mapping[str, str] = field(default_factory=dict)  # recorded on the run


@dataclass(frozen=True)
class Prepared:
    """Everything checked and built for a submission, nothing stored yet (what ``--dry-run`` prints)."""

    job: JobSpec
    snapshot: Snapshot
    datasets: list  # unregistered datasets the run consumes: (content id, record), saved when it is submitted
    target: ComputeTarget
    request: RunRequest
    environment: EnvironmentPlan
    kind: RunKind | None = None


def job_spec_of(config: Any) -> JobSpec:
    if isinstance(config, JobSpec):
        return config
    to_spec = getattr(config, "to_job_spec", None)
    if to_spec is None:
        raise ValidationError(
            f"cannot submit a {type(config).__name__}: submit a ScriptRunConfig, an Estimator or a HyperDriveConfig"
        )
    return to_spec()


def prepare(workspace: WorkspaceContext, experiment_name: str, config: Any, parent_run_id: str | None = None,
            snapshot: Snapshot | None = None) -> Prepared:
    """Validate the configuration, snapshot the code (hashing only what changed; ``snapshot``: a stored one to use
    instead, as a sweep's trials do) and build the target's request.

    Raises before anything is stored or started: bad spec, unknown target, unreadable files, no GPU...
    """
    ws = workspace
    run_kind = config.run_kind(ws) if hasattr(config, "run_kind") else None
    if run_kind is not None and parent_run_id is not None:
        raise ValidationError(f"a {run_kind.run_type} run cannot be a child run")
    job, datasets = _bind_inputs(ws, job_spec_of(config))
    target = get_target(ws, job.compute_target)
    environment = target.plan_environment(job)
    snap = snapshot or snapshots.take(job.source_directory, cache_dir=ws.path / "cache" / "snapshots",
                                      exclude=(ws.path,))
    run = RunRef(new_run_id(experiment_name), experiment_name, parent_run_id)
    if run_kind is not None:  # the job is what the driver's work runs (on its own target); the driver runs here
        driver = get_target(ws, "local")
        request = driver.dryrun(job, run, snap, environment, kind=run_kind.kind, extra=run_kind.extra)
        return Prepared(job, snap, datasets, driver, request, environment, run_kind)
    request = target.admit(target.dryrun(job, run, snap, environment))
    return Prepared(job, snap, datasets, target, request, environment)


def _bind_inputs(ws: WorkspaceContext, job: JobSpec) -> tuple[JobSpec, list]:
    """The job's data inputs checked and fixed by the package that provides them (``plugins.RUN_INPUTS``)."""
    if not job.inputs:
        return job, []
    return plugins.load(plugins.RUN_INPUTS, "data").bind(ws, job)


def submit(workspace: WorkspaceContext, experiment_id: str, experiment_name: str, config: Any,
           tags: Mapping[str, Any] | None = None, display_name: str | None = None,
           parent_run_id: str | None = None, snapshot: Snapshot | None = None) -> RunInfo:
    """Submit a run configuration; returns the recorded run (Queued) at once. The run goes on if this process exits.
    ``snapshot``: the run's code is this stored snapshot, not a new one of its source directory."""
    clean_tags = {validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in (tags or {}).items()}
    name = validation.key(display_name, "display name") if display_name else None
    ws = workspace
    prepared = prepare(ws, experiment_name, config, parent_run_id=parent_run_id, snapshot=snapshot)
    env, kind = prepared.environment, prepared.kind
    for message in env.warnings:
        warnings.warn(message, RunyardWarning, stacklevel=3)
    snapshots.store(prepared.snapshot, ws.artifacts)
    run_id = prepared.request.run_id
    definition = prepared.job.to_definition()
    if kind is not None:
        definition = {"runType": kind.run_type, **kind.definition, "trial": definition}
    info = ws.metadata.create_run(
        experiment_id, run_id=run_id, parent_run_id=parent_run_id, display_name=name,
        run_type=kind.run_type if kind else prepared.job.run_type, status=RunStatus.QUEUED, tags=clean_tags,
        properties={"ContentSnapshotId": prepared.snapshot.id, "runyard.target_type": prepared.target.type,
                    "runyard.environment": env.name, **({"runyard.environment_key": env.key} if env.key else {}),
                    **(kind.properties if kind else {})},
        compute_target=prepared.target.name, definition=definition,
        heartbeat=True,  # a run whose supervisor never starts is failed by the next reader, not left Queued
    )
    try:
        if prepared.job.inputs:
            plugins.load(plugins.RUN_INPUTS, "data").save(ws, run_id, prepared.job, prepared.datasets)
    except Exception as exc:
        ws.metadata.set_status(run_id, RunStatus.FAILED, error={"message": f"could not record the run's inputs: {exc}",
                                                               "code": "ScheduleFailed"})
        raise
    try:
        prepared.target.schedule(prepared.request)
    except Exception as exc:  # the run is recorded: it must not wait in Queued for a supervisor that never came
        ws.metadata.set_status(run_id, RunStatus.FAILED, error={"message": f"could not start the run: {exc}",
                                                               "code": "ScheduleFailed"})
        raise
    return info


def restore_snapshot(workspace: WorkspaceContext, snapshot_id: str, path: str | Path) -> Path:
    """Write the files of a stored snapshot into ``path`` (created; must be empty or missing)."""
    dest = Path(path)
    if dest.exists() and any(dest.iterdir()):
        raise ValidationError(f"cannot restore a snapshot into {dest}: the folder is not empty")
    snapshots.materialize(snapshot_id, workspace.artifacts, dest)
    return dest
