"""MLflow bridge: scripts that call ``mlflow.*`` with ``MLFLOW_TRACKING_URI=runyard://…`` log into runyard runs.

Registered through the entry points ``mlflow.tracking_store`` and ``mlflow.artifact_repository`` (scheme
``runyard``). URIs:

* ``runyard:///ABS/WORKSPACE/FOLDER`` — that workspace; ``runyard://`` (or ``runyard:``) — the current one
  (``RUNYARD_*`` variables, else ``Workspace.from_config()``).
* A run's artifact URI is ``runyard:///ABS/WORKSPACE/FOLDER/@runs/RUN_ID``.

Inside a runyard run (``RUNYARD_RUN_ID`` set), ``mlflow.start_run()`` — explicit, or implied by the first
``mlflow.log_metric`` — attaches to that run, as in Azure ML; ``start_run(nested=True)`` makes child runs of it.
``MLFLOW_RUN_ID`` works too. Metric values go through runyard's batched logger, so ``mlflow.log_metric`` costs a queue append;
reads (``get_run``, ``get_metric_history``, search) flush first. MLflow's own status changes (``end_run``) apply
only to runs MLflow created; a runyard run's status belongs to runyard.
"""
from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable

from mlflow.entities import (
    Experiment as MlflowExperiment,
    ExperimentTag,
    FileInfo,
    LifecycleStage,
    Metric,
    Param,
    Run as MlflowRun,
    RunData,
    RunInfo as MlflowRunInfo,
    RunStatus as MlflowStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

from runyard import env_vars, validation
from runyard.errors import NotFound, RunyardError
from runyard.status import RunStatus
from runyard.store.metadata import MetricRecord, RunInfo
from runyard.workspace import Workspace, workspace_path_from_uri

_MLFLOW_RUN_TYPE = "mlflow"
_DEFAULT_EXPERIMENT = "Default"  # MLflow's experiment "0"
_RUNS_MARK = "/@runs/"
_TO_MLFLOW = {RunStatus.COMPLETED: "FINISHED", RunStatus.FAILED: "FAILED", RunStatus.CANCELED: "KILLED",
              RunStatus.NOT_STARTED: "SCHEDULED", RunStatus.QUEUED: "SCHEDULED"}
_FROM_MLFLOW = {"FINISHED": RunStatus.COMPLETED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.CANCELED,
                "RUNNING": RunStatus.RUNNING}


def workspace_for(path: str | None) -> Workspace:
    """The workspace a ``runyard:`` URI names; the current one (env, config) when it names none."""
    if path is None or path == os.environ.get(env_vars.WORKSPACE):
        return Workspace.from_environment()
    return Workspace(path)


def _mlflow_error(exc: RunyardError) -> MlflowException:
    code = RESOURCE_DOES_NOT_EXIST if isinstance(exc, NotFound) else INVALID_PARAMETER_VALUE
    return MlflowException(str(exc), error_code=code)


class RunyardMlflowStore(AbstractStore):
    """MLflow tracking store backed by a runyard workspace."""

    def __init__(self, store_uri: str | None = None, artifact_uri: str | None = None) -> None:
        super().__init__()
        self.ws = workspace_for(workspace_path_from_uri(store_uri or "runyard:"))
        self.meta = self.ws.metadata

    # -- translation -----------------------------------------------------------------------------
    def _experiment_id(self, experiment_id: str) -> int:
        if str(experiment_id) == "0":
            return self.meta.get_or_create_experiment(_DEFAULT_EXPERIMENT).id
        try:
            return self.meta.get_experiment(int(experiment_id)).id
        except (ValueError, NotFound):
            raise MlflowException(f"experiment {experiment_id!r} does not exist", RESOURCE_DOES_NOT_EXIST) from None

    def _to_experiment(self, info) -> MlflowExperiment:
        ms = int(info.created_at * 1000)
        return MlflowExperiment(str(info.id), info.name, f"runyard://{self.ws.path}", LifecycleStage.ACTIVE,
                                [ExperimentTag(k, v) for k, v in info.tags.items()], ms, ms)

    def _artifact_uri(self, run_id: str) -> str:
        return f"runyard://{self.ws.path}{_RUNS_MARK}{run_id}"

    def _to_runs(self, infos: list[RunInfo]) -> list[MlflowRun]:
        """MLflow runs with their latest numeric metrics, read in one query for the whole list."""
        latest: dict[str, list[Metric]] = {i.run_id: [] for i in infos}
        for m in self.meta.get_latest_metrics(list(latest)):
            if isinstance(m.value, (int, float)):  # MLflow metrics are numbers; runyard's strings stay in runyard
                latest[m.run_id].append(Metric(m.name, m.value, int(m.timestamp * 1000), m.step))
        return [self._to_run(i, latest[i.run_id]) for i in infos]

    def _to_run(self, info: RunInfo, metrics: list[Metric] | None = None) -> MlflowRun:
        if metrics is None:
            return self._to_runs([info])[0]
        tags = dict(info.tags)
        tags.setdefault("mlflow.runName", info.display_name or info.run_id)
        if info.parent_run_id:
            tags.setdefault("mlflow.parentRunId", info.parent_run_id)
        run_info = MlflowRunInfo(
            run_id=info.run_id,
            experiment_id=str(info.experiment_id),
            user_id=tags.get("mlflow.user", ""),
            status=_TO_MLFLOW.get(info.status, "RUNNING"),
            start_time=int((info.start_time or info.created_at) * 1000),
            end_time=int(info.end_time * 1000) if info.end_time else None,
            lifecycle_stage=LifecycleStage.ACTIVE,
            artifact_uri=self._artifact_uri(info.run_id),
            run_name=info.display_name or info.run_id,
        )
        data = RunData(metrics=metrics, params=[Param(k, v) for k, v in info.params.items()],
                       tags=[RunTag(k, v) for k, v in tags.items()])
        return MlflowRun(run_info, data)

    def _flush(self) -> None:
        self.ws.logger.flush()

    # -- experiments -----------------------------------------------------------------------------
    def search_experiments(self, view_type=ViewType.ACTIVE_ONLY, max_results=1000, filter_string=None,
                           order_by=None, page_token=None):
        exps = [self._to_experiment(e) for e in self.meta.list_experiments()]
        exps = SearchExperimentsUtils.sort(SearchExperimentsUtils.filter(exps, filter_string), order_by or [])
        page, token = SearchUtils.paginate(exps, page_token, max_results)
        return PagedList(page, token)

    def create_experiment(self, name, artifact_location=None, tags=None):
        try:
            validation.experiment_name(name)
        except RunyardError as exc:
            raise _mlflow_error(exc) from None
        try:
            self.meta.get_experiment(name)
            raise MlflowException(f"Experiment '{name}' already exists.", INVALID_PARAMETER_VALUE)
        except NotFound:
            return str(self.meta.get_or_create_experiment(name).id)

    def get_experiment(self, experiment_id):
        return self._to_experiment(self.meta.get_experiment(self._experiment_id(experiment_id)))

    def get_experiment_by_name(self, experiment_name):
        try:
            return self._to_experiment(self.meta.get_experiment(experiment_name))
        except NotFound:
            return None

    def set_experiment_tag(self, experiment_id, tag):
        self.meta.set_experiment_tags(self._experiment_id(experiment_id), {tag.key: str(tag.value)})

    def delete_experiment_tag(self, experiment_id, key):
        self.meta.set_experiment_tags(self._experiment_id(experiment_id), {key: None})

    def delete_experiment(self, experiment_id):
        raise MlflowException("runyard keeps every experiment; deleting experiments is not supported", INVALID_PARAMETER_VALUE)

    def restore_experiment(self, experiment_id):
        self._experiment_id(experiment_id)  # experiments are never deleted: restoring an existing one is a no-op

    def rename_experiment(self, experiment_id, new_name):
        raise MlflowException("runyard experiment names are permanent; renaming is not supported", INVALID_PARAMETER_VALUE)

    # -- runs ------------------------------------------------------------------------------------
    def create_run(self, experiment_id, user_id, start_time, tags, run_name):
        tags = {t.key: t.value for t in tags or []}
        parent = tags.get("mlflow.parentRunId")
        current = os.environ.get(env_vars.RUN_ID)
        if current and not parent:
            # As in Azure ML: inside a runyard run, mlflow.start_run() attaches to that run instead of starting
            # another one; nested runs (start_run(nested=True)) become its child runs.
            try:
                self.meta.log_batch(tags=[(current, k, v) for k, v in tags.items() if not k.startswith("mlflow.runName")])
                return self._to_run(self.meta.get_run(current))
            except RunyardError as exc:
                raise _mlflow_error(exc) from None
        try:
            # A child run lives in its parent's experiment, whatever experiment MLflow has active.
            exp_id = self.meta.get_run(parent).experiment_id if parent else self._experiment_id(experiment_id)
            info = self.meta.create_run(
                exp_id,
                parent_run_id=parent,
                display_name=run_name or tags.get("mlflow.runName"),
                run_type=_MLFLOW_RUN_TYPE,
                status=RunStatus.RUNNING,
                tags=tags | ({"mlflow.user": user_id} if user_id else {}),
            )
        except RunyardError as exc:
            raise _mlflow_error(exc) from None
        return self._to_run(info)

    def get_run(self, run_id):
        self._flush()
        try:
            return self._to_run(self.meta.get_run(run_id))
        except NotFound as exc:
            raise _mlflow_error(exc) from None

    def update_run_info(self, run_id, run_status, end_time, run_name):
        info = self.meta.get_run(run_id)
        if run_name:
            self.meta.update_run(run_id, display_name=run_name)
        status = _FROM_MLFLOW.get(MlflowStatus.to_string(run_status) if isinstance(run_status, int) else run_status)
        if info.run_type == _MLFLOW_RUN_TYPE and status and status != info.status and not info.status.is_terminal():
            self._flush()
            self.meta.set_status(run_id, status)
        return self._to_run(self.meta.get_run(run_id)).info

    def delete_run(self, run_id):
        raise MlflowException("runyard keeps every run; deleting runs is not supported", INVALID_PARAMETER_VALUE)

    restore_run = delete_run

    def _search_runs(self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token):
        self._flush()
        runs = []
        for exp_id in experiment_ids:
            infos = list(self.meta.iter_runs(page=500, experiment_id=self._experiment_id(exp_id)))
            for i in range(0, len(infos), 500):  # latest metrics: one query per 500 runs
                runs.extend(self._to_runs(infos[i : i + 500]))
        runs = SearchUtils.sort(SearchUtils.filter(runs, filter_string), order_by)
        return SearchUtils.paginate(runs, page_token, max_results)

    # -- values ----------------------------------------------------------------------------------
    def log_batch(self, run_id, metrics: Iterable[Metric] = (), params: Iterable[Param] = (), tags: Iterable[RunTag] = ()):
        try:
            validation.run_id(run_id)
            for m in metrics:
                value = validation.metric_value(m.key, m.value)
                self.ws.logger.log(MetricRecord(run_id, validation.key(m.key, "metric name"), value,
                                                int(m.step or 0), m.timestamp / 1000.0, "scalar"))
            param_rows = [(run_id, validation.key(p.key, "param"), validation.text(p.value, f"param {p.key!r}"))
                          for p in params]
            tag_rows = [(run_id, validation.key(t.key, "tag"), str(t.value)) for t in tags]
            if param_rows or tag_rows:
                self.meta.log_batch(params=param_rows, tags=tag_rows)
        except RunyardError as exc:
            raise _mlflow_error(exc) from None

    def get_metric_history(self, run_id, metric_key, max_results=None, page_token=None):
        self._flush()
        history = [Metric(r.name, r.value, int(r.timestamp * 1000), r.step)
                   for r in self.meta.get_metric_history([run_id], [metric_key])]
        if max_results is None:
            return PagedList(history, None)
        page, token = SearchUtils.paginate(history, page_token, max_results)
        return PagedList(page, token)

    def log_inputs(self, run_id, datasets=None, models=None):
        """MLflow dataset inputs (mlflow.log_input, autologging) become tags ``mlflow.dataset.<name>``."""
        tags = []
        for item in datasets or []:
            ds = item.dataset
            context = next((t.value for t in item.tags or [] if t.key == "mlflow.data.context"), None)
            value = json.dumps({"digest": ds.digest, "source_type": ds.source_type, "source": ds.source,
                                "context": context}, default=str)
            tags.append((run_id, validation.key(f"mlflow.dataset.{ds.name}", "dataset name"), value))
        if tags:
            self.meta.log_batch(tags=tags)

    # -- MLflow 3 logged models (mlflow.<flavor>.log_model) ---------------------------------------
    def _no_logged_models(self, *args, **kwargs):
        raise MlflowException(
            "MLflow logged models (mlflow.<flavor>.log_model) are not kept by the runyard bridge yet: save the model "
            "with mlflow.<flavor>.save_model(path) and log the folder with mlflow.log_artifacts(path, 'model') — it "
            "lands in the runyard run's files — or use run.upload_folder('outputs/model', path)",
            INVALID_PARAMETER_VALUE,
        )

    # Calls that would create or change one are refused; reads answer truthfully that there are none (MLflow
    # itself searches logged models when it resolves a run's artifact paths).
    create_logged_model = finalize_logged_model = set_logged_model_tags = _no_logged_models
    delete_logged_model = delete_logged_model_tag = log_outputs = record_logged_model = _no_logged_models

    def search_logged_models(self, experiment_ids, filter_string=None, datasets=None, max_results=None,
                             order_by=None, page_token=None):
        return PagedList([], None)

    def get_logged_model(self, model_id, allow_deleted=False):
        raise MlflowException(f"logged model {model_id!r} does not exist (the runyard bridge keeps no logged models)",
                              RESOURCE_DOES_NOT_EXIST)

    def flush_async_logging(self):
        super().flush_async_logging()
        self._flush()


class RunyardArtifactRepository(ArtifactRepository):
    """MLflow artifact repository writing into a runyard run's files (and its artifact index)."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None) -> None:
        super().__init__(artifact_uri, tracking_uri, registry_uri)
        path = workspace_path_from_uri(artifact_uri) or ""
        if _RUNS_MARK.lstrip("/") not in path:
            raise MlflowException(f"not a runyard run artifact URI: {artifact_uri!r}", INVALID_PARAMETER_VALUE)
        ws_path, _, rest = path.partition(_RUNS_MARK)
        run_id, _, self.base = rest.partition("/")
        self.ws = workspace_for(ws_path)
        self.run = self.ws.get_run(run_id)

    def _name(self, *parts: str | None) -> str:
        return validation.artifact_path(posixpath.join(self.base, *[p for p in parts if p]))

    def log_artifact(self, local_file, artifact_path=None):
        self.run.upload_file(self._name(artifact_path, os.path.basename(local_file)), local_file)

    def log_artifacts(self, local_dir, artifact_path=None):
        self.run.upload_folder(posixpath.join(self.base, artifact_path or ""), local_dir)

    def list_artifacts(self, path=None):
        prefix = posixpath.join(self.base, path) if path else self.base
        prefix = prefix.strip("/")
        seen: dict[str, FileInfo] = {}
        for art in self.ws.metadata.list_artifacts(self.run.id, prefix or None):
            if art.path == prefix:
                return []  # MLflow lists nothing for a path that names a file
            rel = art.path[len(prefix) + 1:] if prefix else art.path
            head, _, tail = rel.partition("/")
            shown = posixpath.join(path or "", head) if path else head
            seen.setdefault(shown, FileInfo(shown, True, None) if tail else FileInfo(shown, False, art.size))
        return sorted(seen.values(), key=lambda f: f.path)

    def _download_file(self, remote_file_path, local_path):
        self.ws.artifacts.get_file(self.run.id, self._name(remote_file_path), local_path)

    def delete_artifacts(self, artifact_path=None):
        raise MlflowException("runyard keeps every run file; deleting artifacts is not supported", INVALID_PARAMETER_VALUE)


