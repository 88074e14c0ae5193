"""Submission: a run configuration → validated JobSpec → snapshot → run record (Queued) → compute target."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import validation
from runyard.errors import ComputeError, RunyardWarning, ValidationError
from runyard.ids import new_run_id
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.compute import ComputeTarget, SubmitRequest
    from runyard.config.job import JobSpec
    from runyard.submission.environments import EnvironmentPlan
    from runyard.experiment import Experiment
    from runyard.run import Run
    from runyard.submission.snapshot import Snapshot
    from runyard.workspace import Workspace


@dataclass(frozen=True)
class Prepared:
    """Everything checked and built for a submission, nothing stored yet (what ``--dry-run`` prints)."""

    job: "JobSpec"
    snapshot: "Snapshot"
    datasets: list  # unregistered datasets the run consumes: (content id, record), saved when it is submitted
    target: "ComputeTarget"
    request: "SubmitRequest"
    environment: "EnvironmentPlan"


def job_spec_of(config: Any) -> "JobSpec":
    from runyard.config.job import JobSpec

    if isinstance(config, JobSpec):
        return config
    to_spec = getattr(config, "to_job_spec", None)
    if to_spec is None:
        raise ValidationError(
            f"cannot submit a {type(config).__name__}: submit a ScriptRunConfig or an Estimator"
        )
    return to_spec()


def prepare(workspace: "Workspace", experiment_name: str, config: Any, parent_run_id: str | None = None) -> Prepared:
    """Validate the configuration, snapshot the code (hashing only what changed) and build the target's request.

    Raises before anything is stored or started: bad spec, unknown target, unreadable files, no GPU...
    """
    from runyard.compute import RunRef, get_target
    from runyard.submission import snapshot

    from runyard.data import inputs

    ws = workspace
    job, datasets = inputs.bind(ws, job_spec_of(config))  # data inputs checked (datastores, paths, datasets)
    target = get_target(ws, job.compute_target)
    environment = target.plan_environment(job)
    snap = snapshot.take(job.source_directory, cache_dir=ws.path / "cache" / "snapshots", exclude=(ws.path,))
    run = RunRef(new_run_id(experiment_name), experiment_name, parent_run_id)
    return Prepared(job, snap, datasets, target, target.dryrun(job, run, snap, environment), environment)


def submit(
    experiment: "Experiment",
    config: Any,
    tags: Mapping[str, Any] | None = None,
    display_name: str | None = None,
    parent_run_id: str | None = None,
) -> "Run":
    """Submit a run configuration; returns the Queued run at once. The run goes on if this process exits."""
    from runyard.run import Run
    from runyard.submission import snapshot

    from runyard.hyperdrive.config import HyperDriveConfig

    if isinstance(config, HyperDriveConfig):
        from runyard.hyperdrive.config import submit_sweep

        if parent_run_id is not None:
            raise ValidationError("a sweep cannot be a child run")
        return submit_sweep(experiment, config, tags=tags, display_name=display_name)
    clean_tags = {validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in (tags or {}).items()}
    ws = experiment.workspace
    prepared = prepare(ws, experiment.name, config, parent_run_id=parent_run_id)
    env = prepared.environment
    if env.docker:
        from runyard.submission.environments import docker_engine_error

        problem = docker_engine_error()
        if problem:
            raise ComputeError(f"{problem} — start Docker (or set up a rootless one), or remove docker.enabled / "
                               "custom_docker_image from the environment to run without a container")
    for message in env.warnings:
        warnings.warn(message, RunyardWarning, stacklevel=3)
    snapshot.store(prepared.snapshot, ws.artifacts)
    run_id = prepared.request.run_id
    info = ws.metadata.create_run(
        experiment.id, run_id=run_id, parent_run_id=parent_run_id,
        display_name=validation.key(display_name, "display name") if display_name else None,
        run_type=prepared.job.run_type, status=RunStatus.QUEUED, tags=clean_tags,
        properties={"ContentSnapshotId": prepared.snapshot.id, "runyard.target_type": prepared.target.type,
                    "runyard.environment": env.name, **({"runyard.environment_key": env.key} if env.key else {})},
        compute_target=prepared.target.name, definition=prepared.job.to_definition(),
        heartbeat=True,  # a run whose supervisor never starts is failed by the next reader, not left Queued
    )
    try:
        if prepared.job.inputs:
            from runyard.data import inputs

            inputs.save(ws, run_id, prepared.job, prepared.datasets)
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
    return Run(experiment, run_id, _info=info)


def restore_snapshot(workspace, snapshot_id: str, path: str | Path) -> Path:
    """Write the files of a stored snapshot into ``path`` (created; must be empty or missing)."""
    from runyard.submission import snapshot

    dest = Path(path)
    if dest.exists() and any(dest.iterdir()):
        raise ValidationError(f"cannot restore a snapshot into {dest}: the folder is not empty")
    snapshot.materialize(snapshot_id, workspace.artifacts, dest)
    return dest
