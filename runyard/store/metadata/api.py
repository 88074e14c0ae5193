"""The metadata store's interfaces: tracking (experiments, runs and what they log) and the registry (models,
environments, compute targets, datastores, datasets). One SQL database serves both (``SqlMetadataStore``); a
layer that needs only one of them names that one. Convenience calls funnel into one primitive, ``log_batch``."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from runyard.status import RunStatus
from runyard.store.metadata.entities import (
    ArtifactInfo,
    ComputeTargetRecord,
    DatasetRecord,
    DatastoreRecord,
    RunInputRecord,
    ModelRecord,
    EnvironmentRecord,
    ExperimentInfo,
    LatestMetric,
    MetricRecord,
    MetricSeries,
    RunInfo,
)


class TrackingStore(ABC):
    """Experiments, runs, metrics, params, tags, properties, the artifact index and what runs consumed."""

    url: str

    # -- experiments -------------------------------------------------------------------------
    @abstractmethod
    def get_or_create_experiment(self, name: str) -> ExperimentInfo:
        """Return the experiment called ``name``, creating it (safe when processes race)."""

    @abstractmethod
    def get_experiment(self, name_or_id: str | int) -> ExperimentInfo:
        """Raise NotFound when there is no such experiment."""

    @abstractmethod
    def list_experiments(self) -> list[ExperimentInfo]: ...

    @abstractmethod
    def set_experiment_tags(self, experiment_id: int, tags: Mapping[str, str | None]) -> ExperimentInfo:
        """Set experiment tags; a value of None removes the tag."""

    # -- runs --------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        experiment_id: int,
        *,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        display_name: str | None = None,
        run_type: str = "interactive",
        status: RunStatus = RunStatus.NOT_STARTED,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        compute_target: str | None = None,
        definition: Mapping[str, Any] | None = None,
        heartbeat: bool = False,
    ) -> RunInfo:
        """``heartbeat=True``: the run can go stale from now on (its driver must heartbeat it)."""

    @abstractmethod
    def get_run(self, run_id: str) -> RunInfo:
        """Raise NotFound for an unknown id."""

    @abstractmethod
    def list_runs(
        self,
        *,
        experiment_id: int | None = None,
        parent_run_id: str | Sequence[str] | None = None,
        top_level_only: bool = False,
        statuses: Sequence[RunStatus] | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        sort: str | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> list[RunInfo]:
        """Newest first (or by ``sort``: created, name, status, duration, metric:NAME, param:NAME, '-' for descending);
        paginated with limit/offset. ``parent_run_id`` may list several parents (a tree level); ``search``: text in
        the run's id or display name; ``run_ids``: only these runs (a few hundred at a time)."""

    def iter_runs(self, page: int = 200, **filters) -> Iterator[RunInfo]:
        """Every run matching ``list_runs``' filters, newest first, read a page at a time."""
        offset = 0
        while True:
            batch = self.list_runs(limit=page, offset=offset, **filters)
            yield from batch
            if len(batch) < page:
                return
            offset += page

    @abstractmethod
    def count_runs(self, *, experiment_id: int | None = None, top_level_only: bool = False,
                   parent_run_id: str | Sequence[str] | None = None, statuses: Sequence[RunStatus] | None = None,
                   search: str | None = None) -> int:
        """How many runs ``list_runs`` with the same filters would page through."""

    @abstractmethod
    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: Mapping | None = None,
        exit_code: int | None = None,
        at: float | None = None,
    ) -> RunInfo:
        """Move a run to ``status``. Raise InvalidStatusTransition when the run is already terminal.

        A run in CancelRequested stays there when asked to move to Queued/Preparing/Starting/Running (the returned
        info says so): a driver's progress report never undoes a cancel.

        ``at``: when it happened (Unix seconds; default now), for a driver that records a change after the fact.
        """

    @abstractmethod
    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Record that the processes driving these runs are alive. Only runs that heartbeat can go stale."""

    @abstractmethod
    def fail_stale_runs(self, timeout: float, spare: Iterable[str] = ()) -> list[str]:
        """Mark Failed every unfinished run whose last heartbeat is older than ``timeout`` seconds (but those in
        ``spare``, whose driver is known to be alive); return their ids."""

    @abstractmethod
    def update_run(self, run_id: str, *, display_name: str | None = None, description: str | None = None) -> None: ...

    # -- values ------------------------------------------------------------------------------
    @abstractmethod
    def log_batch(
        self,
        metrics: Sequence[MetricRecord] = (),
        params: Iterable[tuple[str, str, str]] = (),
        tags: Iterable[tuple[str, str, str]] = (),
        journal: tuple[str, int] | None = None,
    ) -> None:
        """Write metrics, params ``(run_id, key, value)`` and tags ``(run_id, key, value)`` in one transaction.

        ``journal=(name, first)``: the metrics are values ``first …`` of that metric journal (runyard.store.journal);
        values the journal's mark says are stored already are skipped, and the mark moves past them in the same
        transaction, so writing a journal's values again (a retry, a replay after a crash) stores each once."""

    def log_metric(self, record: MetricRecord) -> None:
        self.log_batch(metrics=[record])

    def log_param(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(params=[(run_id, key, value)])

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.log_batch(tags=[(run_id, key, value)])

    @abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None: ...

    @abstractmethod
    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        """Properties are write-once: changing an existing key's value raises ValidationError."""

    @abstractmethod
    def get_metric_history(self, run_ids: Sequence[str], names: Sequence[str] | None = None) -> list[MetricRecord]:
        """Every value of the runs' metrics, in logging order."""

    @abstractmethod
    def get_metric_series(self, run_id: str, name: str, points: int = 2000,
                          known: tuple[int, int] | None = None, after: int | None = None) -> MetricSeries:
        """Steps, values and times of one numeric metric, by step; past ``points`` values, reduced in the database
        to the lowest and highest value of each of ``points // 2`` step ranges (a spike stays visible). ``known``:
        (count, last step) from ``get_latest_metrics``, for series whose steps count up from 0 (``run.log``'s).
        ``after``: only the values logged after the series' ``last_id`` ``after``, in logging order, at most
        ``points`` of them, never reduced (what a live chart appends)."""

    @abstractmethod
    def get_latest_metrics(self, run_ids: Sequence[str]) -> list[LatestMetric]: ...

    # -- artifact index ----------------------------------------------------------------------
    @abstractmethod
    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None: ...

    @abstractmethod
    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[ArtifactInfo]: ...

    def close(self) -> None:  # noqa: B027 - a no-op unless the store holds connections
        """Release connections."""

    # -- run inputs (lineage) ----------------------------------------------------------------
    @abstractmethod
    def record_run_inputs(self, run_id: str, inputs: Sequence[RunInputRecord]) -> None:
        """What a run consumes, recorded at submission."""

    @abstractmethod
    def list_run_inputs(self, run_id: str) -> list[RunInputRecord]:
        """A run's inputs, by name."""

    @abstractmethod
    def list_dataset_consumers(self, dataset_ids: Sequence[str]) -> list[RunInputRecord]:
        """Every run input that consumed one of these datasets."""


class RegistryStore(ABC):
    """What a workspace keeps by name and version: models, compute targets, environments, datastores, datasets."""

    # -- models ------------------------------------------------------------------------------
    @abstractmethod
    def register_model(self, name: str, record: Mapping[str, Any]) -> ModelRecord:
        """Store the next version of ``name`` (1 for a new name); ``record`` holds the other columns."""

    @abstractmethod
    def get_model(self, name: str, version: int | None = None, alias: str | None = None) -> ModelRecord:
        """The latest version, a version, or the one an alias points at; NotFound says what exists."""

    @abstractmethod
    def list_models(self, name: str | None = None, run_id: str | None = None, tags: Mapping[str, str] | None = None,
                    latest: bool = False, limit: int = 100, offset: int = 0) -> list[ModelRecord]:
        """Newest first; ``latest``: only each name's newest version; ``tags``: every given tag must match."""

    @abstractmethod
    def set_model_alias(self, name: str, alias: str, version: int | None) -> None:
        """Point ``alias`` at ``version`` of ``name`` (None removes it)."""

    @abstractmethod
    def update_model(self, name: str, version: int, tags: Mapping[str, str] | None = None,
                     properties: Mapping[str, str] | None = None, description: str | None = None) -> ModelRecord:
        """Replace tags / add properties (existing properties are kept: they are immutable) / set the description."""

    # -- compute targets ---------------------------------------------------------------------
    @abstractmethod
    def create_compute_target(self, name: str, type_: str, config: Mapping[str, Any]) -> ComputeTargetRecord:
        """Register a target; AlreadyExists when the name is taken."""

    @abstractmethod
    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        """NotFound (naming the registered ones) when there is none by that name."""

    @abstractmethod
    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        """Every registered target, by name."""

    @abstractmethod
    def set_compute_target_state(self, name: str, state: Mapping[str, Any]) -> ComputeTargetRecord:
        """Replace what the target records about itself."""

    @abstractmethod
    def delete_compute_target(self, name: str) -> None:
        """Forget the target (NotFound when absent)."""

    # -- environments ------------------------------------------------------------------------
    @abstractmethod
    def register_environment(self, name: str, spec: Mapping[str, Any]) -> EnvironmentRecord:
        """Store ``spec`` as the next version of ``name`` (1 for a new name); the same spec as the latest version
        is not stored twice (its record is returned)."""

    @abstractmethod
    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        """The latest version, or ``version``; NotFound names the versions that exist."""

    @abstractmethod
    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        """The latest version of each name, by name; with ``name``, every version of it, newest first."""

    # -- datastores --------------------------------------------------------------------------
    @abstractmethod
    def save_datastore(self, name: str, type_: str, config: Mapping[str, Any], overwrite: bool = False,
                       default: bool = False) -> DatastoreRecord:
        """Register a datastore (AlreadyExists-style ValidationError unless ``overwrite``); ``default``: make it the
        workspace's default (the first registered one is the default until another is chosen)."""

    @abstractmethod
    def get_datastore(self, name: str | None = None) -> DatastoreRecord:
        """By name, or the default when ``name`` is None; NotFound names the registered ones."""

    @abstractmethod
    def list_datastores(self) -> list[DatastoreRecord]:
        """Every datastore, by name."""

    @abstractmethod
    def set_default_datastore(self, name: str) -> None:
        """Make ``name`` the default datastore (NotFound when absent)."""

    @abstractmethod
    def delete_datastore(self, name: str) -> None:
        """Forget a datastore (its files stay where they are); NotFound when absent."""

    # -- datasets ----------------------------------------------------------------------------
    @abstractmethod
    def save_dataset(self, record: Mapping[str, Any], name: str | None = None, create_new_version: bool = True,
                     dataset_id: str | None = None) -> DatasetRecord:
        """Save a dataset. With ``name``: the next version of it, unless the latest version has the same definition
        and files (then that version is returned); a taken name without ``create_new_version`` is a
        ValidationError. Without a name: an unnamed record (what a run consumed) with ``dataset_id`` (its content
        id: saving the same one twice keeps one record)."""

    @abstractmethod
    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        """The latest version or ``version``; NotFound names the versions, or the close names."""

    @abstractmethod
    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        """A saved dataset by id (registered or not)."""

    @abstractmethod
    def list_datasets(self, name: str | None = None) -> list[DatasetRecord]:
        """The latest version of each registered name, by name; with ``name``, every version, newest first."""

    @abstractmethod
    def update_dataset(self, dataset_id: str, tags: Mapping[str, str] | None = None,
                       description: str | None = None) -> DatasetRecord:
        """Replace the tags / set the description of one version (its files never change)."""


class MetadataStore(TrackingStore, RegistryStore):
    """A workspace's whole metadata store: tracking and the registry in one database."""
