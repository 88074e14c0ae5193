"""Plain data the metadata store hands out; SQL rows never leave the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from runyard.status import RunStatus


@dataclass(frozen=True)
class ExperimentInfo:
    id: int
    name: str
    created_at: float
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: int
    experiment_name: str
    status: RunStatus
    created_at: float
    parent_run_id: str | None = None
    display_name: str | None = None
    run_type: str = "interactive"
    description: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    heartbeat_at: float | None = None
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    compute_target: str | None = None
    definition: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to the last heartbeat / now for a live run)."""
        import time

        if self.start_time is None:
            return None
        end = self.end_time if self.end_time is not None else (None if self.status.is_terminal() else time.time())
        return None if end is None else max(0.0, end - self.start_time)


class MetricRecord(NamedTuple):
    """One logged value. ``kind`` says how it was logged (scalar, list, row, table, image)."""

    run_id: str
    name: str
    value: Any
    step: int
    timestamp: float
    kind: str = "scalar"


class LatestMetric(NamedTuple):
    run_id: str
    name: str
    value: Any
    step: int
    timestamp: float
    kind: str
    value_count: int


class MetricSeries(NamedTuple):
    """Points of one numeric metric, by step (``get_metric_series``): ``times`` are the values' timestamps,
    ``count`` how many values the series has in all, ``last_id`` the position of its newest value (ask for the values
    after it with ``after=last_id``)."""

    steps: list[int]
    values: list[float | None]
    times: list[float]
    count: int
    last_id: int

    @property
    def reduced(self) -> bool:
        return self.count > len(self.values)


class ArtifactInfo(NamedTuple):
    path: str
    size: int
    created_at: float


@dataclass(frozen=True)
class ModelRecord:
    """One registered version of a model: its files (by content id), framework, tags, lineage."""

    name: str
    version: int
    content_id: str
    path: str
    framework: str | None
    framework_version: str | None
    description: str | None
    tags: dict[str, str]
    properties: dict[str, str]
    run_id: str | None
    details: dict[str, Any]
    created_at: float
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComputeTargetRecord:
    """A compute target registered in the workspace (``ComputeTarget.create``): its type and configuration."""

    name: str
    type: str
    config: dict[str, Any]
    state: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class EnvironmentRecord:
    """One registered version of a named environment."""

    name: str
    version: int
    spec: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class DatastoreRecord:
    """A registered datastore: its type and configuration (secrets in it are encrypted)."""

    name: str
    type: str
    config: dict[str, Any]
    is_default: bool
    created_at: float


@dataclass(frozen=True)
class DatasetRecord:
    """A saved dataset: registered (name and version) or saved unnamed when a run consumed it."""

    id: str
    name: str | None
    version: int | None
    type: str
    description: str | None
    tags: dict[str, str]
    definition: dict[str, Any]
    files: list[dict[str, Any]]
    created_at: float


@dataclass(frozen=True)
class RunInputRecord:
    """One input of a run: a dataset (by id) or a datastore path, and how the run consumed it."""

    run_id: str
    name: str
    dataset_id: str | None
    mode: str
    details: dict[str, Any]
