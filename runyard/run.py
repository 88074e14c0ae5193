"""The Run handle: log metrics, upload files, tag, nest child runs, read everything back (Azure ML v1 shapes)."""
from __future__ import annotations

import io
import os
import re
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from runyard import env_vars, plugins, validation
from runyard.context import owned
from runyard.errors import InvalidStatusTransition, NotFound, RunFailed, RunyardError, ValidationError
from runyard.status import RunStatus
from runyard.store.metadata import MetricRecord, RunInfo

if TYPE_CHECKING:
    from runyard.config.datapath import DataPath
    from runyard.config.environment import Environment
    from runyard.store.metadata import ExperimentInfo
    from runyard.workspace import Workspace

_now = time.time
_PLAIN_RUN_TYPES = ("script", "interactive", "child")
_PARENTS_PER_QUERY = 500


def shape_metrics(records: Iterable[tuple[str, Any, str]]) -> dict[str, Any]:
    """Turn (name, value, kind) records, in logging order, into ``get_metrics()``'s dict.

    ``log`` once → the value; more often → a list. ``log_list`` → a list. ``log_row`` → {column: [values]}.
    ``log_table`` → the last table logged. ``log_image`` → the image's artifact name (a list when several).
    """
    grouped: dict[str, tuple[str, list]] = {}
    for name, value, kind in records:
        grouped.setdefault(name, (kind, []))[1].append(value)
    out: dict[str, Any] = {}
    for name, (kind, values) in grouped.items():
        if kind == "table":
            out[name] = values[-1]
        elif kind == "row":
            columns: dict[str, list] = {}
            for i, row in enumerate(values):
                for col, v in row.items():
                    columns.setdefault(col, [None] * i).append(v)
                for col in columns:  # a column missing from this row gets None, keeping columns aligned
                    if len(columns[col]) < i + 1:
                        columns[col].append(None)
            out[name] = columns
        elif kind == "list" or len(values) > 1:
            out[name] = values
        else:
            out[name] = values[0]
    return out


class _RunBase(ABC):
    """The API shared by stored runs and offline runs: logging, files, tags, life cycle."""

    id: str

    def __init__(self) -> None:
        self._names: set[str] = set()  # metric names already validated
        self._steps: dict[str, int] = {}

    def _record(self, name: str, value: Any, kind: str, step: int | None) -> None:
        if type(name) is not str or name not in self._names:
            validation.key(name, "metric name")
            self._names.add(name)
        name = self._rank_name(name)
        if name is None:
            return
        if step is None:
            step = self._steps.get(name, 0)
        self._steps[name] = step + 1
        self._emit(MetricRecord(self.id, name, value, step, _now(), kind))

    def _rank_name(self, name: str) -> str | None:
        """The name a metric is stored under (None: not stored); ranks of a distributed run may differ."""
        return name

    @abstractmethod
    def _emit(self, record: MetricRecord) -> None:
        """Deliver one validated metric record."""

    @abstractmethod
    def _put(self, items: list[tuple[str, Any]], show_progress: bool | None) -> None:
        """Store files: (validated name, local path or binary stream) pairs."""

    @abstractmethod
    def _files(self, prefix: str | None = None) -> list[tuple[str, int]]:
        """(name, size) of the run's files under ``prefix``."""

    @abstractmethod
    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> str: ...

    @abstractmethod
    def complete(self, _set_status: bool = True) -> None: ...

    @abstractmethod
    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None: ...

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a number or a string. Logged once it reads back as a value, logged again as a list.

        Args:
            name: any printable text (spaces and '@' allowed), up to 255 characters.
            value: int, float (NaN and ±inf kept), bool, str, or a numpy/torch scalar.
            step: the x position; by default 0, 1, 2… per metric name.
        """
        self._record(name, validation.metric_value(name, value), "scalar", None if step is None else validation.step(name, step))

    def log_list(self, name: str, value: Iterable[Any], description: str = "") -> None:
        """Log a list of numbers or strings; reads back as a list even with one element."""
        for v in validation.metric_list(name, value):
            self._record(name, v, "list", None)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        """Append a row to a table metric: ``log_row("t", epoch=1, acc=0.9)``; reads back as {column: [values]}."""
        self._record(name, validation.row(name, kwargs), "row", None)

    def log_table(self, name: str, value: Mapping[str, Iterable[Any]], description: str = "") -> None:
        """Log a whole table as {column: [values]}; reads back as the last table logged."""
        self._record(name, validation.table(name, value), "table", None)

    def log_image(self, name: str, path: str | os.PathLike | None = None, plot: Any = None, description: str = "") -> None:
        """Log an image file (``path=``) or a matplotlib figure/pyplot (``plot=``); it is stored as a run file."""
        if (path is None) == (plot is None):
            raise ValidationError(f"log_image({name!r}) needs exactly one of path= or plot=")
        validation.key(name, "image name")
        if path is not None:
            if not os.path.isfile(path):
                raise NotFound(f"log_image({name!r}): no image file at {path}")
            source: Any = os.fspath(path)
            suffix = Path(path).suffix or ".png"
        else:
            if not hasattr(plot, "savefig"):
                raise ValidationError(f"log_image({name!r}): plot= must be a matplotlib figure or pyplot, got {type(plot).__name__}")
            source = io.BytesIO()
            plot.savefig(source, format="png")
            source.seek(0)
            suffix = ".png"
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"
        artifact = f"images/{safe}_{int(_now() * 1000)}_{uuid.uuid4().hex[:6]}{suffix}"  # unique across ranks
        self.upload_file(artifact, source)
        self._record(name, artifact, "image", None)

    # -- files (one implementation over _put/_files for stored and offline runs) --------------
    def upload_file(self, name: str, path_or_stream: str | os.PathLike | BinaryIO) -> str:
        """Store a file under ``name`` (a relative path such as ``outputs/model.pkl``)."""
        return self.upload_files([name], [path_or_stream])[0]

    def upload_files(
        self, names: Sequence[str], paths: Sequence[str | os.PathLike | BinaryIO], show_progress: bool | None = None
    ) -> list[str]:
        """Store several files; every name and path is checked before the first byte is written."""
        if len(names) != len(paths):
            raise ValidationError(f"upload_files: {len(names)} names but {len(paths)} paths")
        names = [validation.artifact_path(n) for n in names]
        for path in paths:
            if isinstance(path, (str, os.PathLike)) and not os.path.isfile(path):
                raise NotFound(f"cannot upload {os.fspath(path)}: no such file")
        self._put(list(zip(names, paths, strict=True)), show_progress)
        return names

    def upload_folder(self, name: str, path: str | os.PathLike, show_progress: bool | None = None) -> list[str]:
        """Store every file under the local folder ``path`` as ``name/<relative path>`` (``name=""``: the run's root)."""
        root = Path(path)
        if not root.is_dir():
            raise NotFound(f"cannot upload folder {path}: no such folder")
        from runyard.store import run_files

        items = run_files.folder_items(validation.artifact_path(name) if name.strip("/") else "", root)
        return self.upload_files([n for n, _ in items], [p for _, p in items], show_progress)

    def _get_outputs_datapath(self) -> "DataPath":
        """What this run stored under ``outputs/``, as a DataPath (the private Azure call resume notebooks use:
        ``TensorFlow(..., resume_from=run._get_outputs_datapath())``)."""
        from runyard.config.datapath import DataPath

        return DataPath._of_run(self.id, "outputs")

    def get_file_names(self) -> list[str]:
        return [name for name, _ in self._files()]

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike | None = None,
        append_prefix: bool = True,
        show_progress: bool | None = None,
    ) -> list[str]:
        """Copy every stored file under ``prefix`` into ``output_directory`` (default: cwd), keeping relative paths.

        With ``append_prefix=False`` the prefix is dropped from the local paths.
        """
        prefix = validation.artifact_path(prefix) if prefix else None
        found = self._files(prefix)
        if prefix and not found:
            raise NotFound(f"run {self.id} has no files under {prefix!r}")
        out = Path(output_directory or ".")
        from runyard.progress import track

        paths = []
        for name, _ in track(found, "downloading", show_progress, total_bytes=lambda f: f[1]):
            rel = name if append_prefix or not prefix else os.path.relpath(name, prefix)
            if rel == ".":
                rel = Path(name).name
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            paths.append(self.download_file(name, dest))
        return paths

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.complete()
        else:
            self.fail(error_details=exc)

    @classmethod
    def get_context(cls, allow_offline: bool = True) -> "_RunBase":
        """The run this process belongs to (``RUNYARD_RUN_ID``), else an offline run that prints what is logged."""
        global _context
        run_id = os.environ.get(env_vars.RUN_ID)
        if run_id:
            if not (isinstance(_context, Run) and _context.id == run_id):
                from runyard.workspace import Workspace

                _context = Run._by_id(Workspace.from_environment(), run_id)
            return _context
        if not allow_offline:
            raise RunyardError(f"this process is not part of a runyard run ({env_vars.RUN_ID} is not set)")
        if not isinstance(_context, OfflineRun):
            _context = OfflineRun()
        return _context

    get_submitted_run = get_context  # the 2018 SDK's name


_context: _RunBase | None = None


class Run(_RunBase):
    """A run in the run history.

    ``Run(experiment, run_id)`` opens an existing run (NotFound when there is none); new runs come from
    ``Experiment.start_logging()``, ``run.child_run()`` and (later) ``Experiment.submit()``.
    """

    def __init__(self, experiment: "Experiment", run_id: str, outputs: str | None = None, *, _info: RunInfo | None = None):
        super().__init__()
        self.experiment = experiment
        self._ws = experiment.workspace
        info = _info or self._ws.metadata.get_run(validation.run_id(run_id))
        if info.experiment_id != experiment.id:
            raise NotFound(f"run {run_id!r} belongs to experiment {info.experiment_name!r}, not {experiment.name!r}")
        self._info = info
        self.id = info.run_id
        self._outputs = outputs
        self._logger = self._ws.logger

    @classmethod
    def _of(cls, experiment: "Experiment", info: RunInfo) -> "Run":
        """The handle of a recorded run, of its run type's class."""
        return _class_for(info)(experiment, info.run_id, _info=info)

    @classmethod
    def _by_id(cls, ws: "Workspace", run_id: str) -> "Run":
        info = ws.metadata.get_run(validation.run_id(run_id))
        kind = _class_for(info) if cls is Run else cls
        return kind(Experiment._from_info(ws, ws.metadata.get_experiment(info.experiment_id)), run_id, _info=info)

    # -- identity ----------------------------------------------------------------------------
    @property
    def workspace(self) -> "Workspace":
        return self._ws

    @property
    def display_name(self) -> str:
        return self._info.display_name or self.id

    @display_name.setter
    def display_name(self, value: str) -> None:
        self._ws.metadata.update_run(self.id, display_name=validation.key(value, "display name"))
        self._refresh()

    @property
    def description(self) -> str | None:
        return self._refresh().description

    @description.setter
    def description(self, value: str) -> None:
        self._ws.metadata.update_run(self.id, description=validation.text(value, "description"))
        self._refresh()

    @property
    def type(self) -> str:
        return self._info.run_type

    @property
    def parent(self) -> "Run | None":
        return Run._by_id(self._ws, self._info.parent_run_id) if self._info.parent_run_id else None

    @property
    def status(self) -> str:
        return self.get_status()

    def _refresh(self) -> RunInfo:
        self._info = self._ws.metadata.get_run(self.id)
        return self._info

    def get_status(self) -> str:
        """The current status, as Azure ML spells it ("Running", "Completed", ...)."""
        return self._refresh().status.value

    def get_environment(self) -> "Environment":
        """The environment the run was submitted with (Azure ML's ``run.get_environment()``)."""
        from runyard.config.environment import Environment

        spec = (self._refresh().definition or {}).get("environment")
        if not spec:
            raise NotFound(f"run {self.id} has no environment: it was not submitted (started with start_logging)")
        return Environment.from_spec(spec)

    def get_details(self) -> dict[str, Any]:
        info = self._refresh()
        return {
            "runId": info.run_id,
            "experiment": info.experiment_name,
            "displayName": self.display_name,
            "runType": info.run_type,
            "parentRunId": info.parent_run_id,
            "status": info.status.value,
            "createdUtc": _iso(info.created_at),
            "startTimeUtc": _iso(info.start_time),
            "endTimeUtc": _iso(info.end_time),
            "durationSeconds": info.duration,
            "properties": dict(info.properties),
            "tags": dict(info.tags),
            "error": info.error,
            "exitCode": info.exit_code,
            "description": info.description,
            "target": info.compute_target,
            "runDefinition": _as_azure_shows(info.definition),
            "inputDatasets": plugins.load(plugins.RUN_INPUTS, "data").details(self._ws, self.id)
            if (info.definition or {}).get("inputs") else [],
            "logFiles": {a.path: self._ws.artifacts.uri(self.id, a.path) for a in self._ws.metadata.list_artifacts(self.id, "logs")}
            if info.compute_target else {},
        }

    @property
    def input_datasets(self) -> dict[str, Any]:
        """In a submitted script: each input by name — the path of a mounted or downloaded one, the dataset of a
        tabular one (``run.input_datasets["train"].to_pandas_dataframe()``)."""
        if os.environ.get(env_vars.RUN_ID) == self.id:
            return plugins.load(plugins.RUN_INPUTS, "data").input_datasets(lambda: self._ws)
        found = {}
        for item in self._ws.metadata.list_run_inputs(self.id):
            if item.dataset_id:
                found[item.name] = plugins.load(plugins.FEATURES, "Dataset").get_by_id(self._ws, item.dataset_id)
        return found

    def restore_snapshot(self, path: str | os.PathLike | None = None) -> str:
        """Write the code snapshot this run ran (``source_directory`` as submitted) into ``path`` (default ./snapshot_<id>)."""
        from runyard.submission import restore_snapshot

        snapshot_id = self.get_properties().get("ContentSnapshotId")
        if not snapshot_id:
            raise NotFound(f"run {self.id} has no code snapshot (only submitted runs have one)")
        return str(restore_snapshot(self._ws, snapshot_id, path or f"snapshot_{self.id}"))

    def get_all_logs(self, destination: str | os.PathLike | None = None) -> list[str]:
        """Download the run's ``logs/`` (captured output of every rank, the supervisor's log, the script's ./logs)."""
        return self.download_files(prefix="logs", output_directory=destination or ".")

    def __repr__(self) -> str:
        return f"Run(experiment={self.experiment.name!r}, id={self.id!r}, type={self.type!r}, status={self._info.status.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id and other._ws == self._ws

    def __hash__(self) -> int:
        return hash(self.id)

    # -- metrics -----------------------------------------------------------------------------
    def _rank_name(self, name: str) -> str | None:
        """In a distributed run, a process of rank N ≠ 0 logs ``name`` as ``name/rankN`` (``RUNYARD_RANK_METRICS``:
        ``tag``, the default; ``merge``: every rank under the same name; ``rank0``: only rank 0's values kept)."""
        mode = self.__dict__.get("_rank_mode")
        if mode is None:
            rank = os.environ.get(env_vars.RANK, "0") if self._supervised_here() else "0"
            policy = os.environ.get(env_vars.RANK_METRICS, "tag").lower()
            if policy not in ("tag", "merge", "rank0"):
                raise ValidationError(f"{env_vars.RANK_METRICS} must be tag, merge or rank0, got {policy!r}")
            mode = self._rank_mode = ("merge", "") if rank in ("", "0") or policy == "merge" else (policy, rank)
        policy, rank = mode
        if policy == "merge":
            return name
        return None if policy == "rank0" else f"{name}/rank{rank}"

    def _emit(self, record: MetricRecord) -> None:
        self._logger.log(record)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every value logged so far is in the store."""
        return self._logger.flush(timeout)

    def get_metrics(self, name: str | None = None, recursive: bool = False, run_type: str | None = None) -> dict[str, Any]:
        """Metrics as {name: value or list}; with ``recursive=True``, {run_id: metrics} for this run and its descendants."""
        self.flush()
        runs = [self, *self.get_children(recursive=True)] if recursive else [self]
        if run_type:
            runs = [r for r in runs if r.type == run_type]
        ids = [r.id for r in runs]
        by_run: dict[str, list] = {i: [] for i in ids}
        for rec in self._ws.metadata.get_metric_history(ids, [name] if name else None):
            by_run[rec.run_id].append((rec.name, rec.value, rec.kind))
        shaped = {run_id: shape_metrics(records) for run_id, records in by_run.items()}
        return shaped if recursive else shaped[self.id]

    # -- tags and properties -----------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        """Set a tag (mutable). ``value`` may be omitted: the tag is then present with an empty value."""
        self._ws.metadata.set_tag(self.id, validation.key(key, "tag key"), validation.text(value, f"tag {key!r}"))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        rows = [(self.id, validation.key(k, "tag key"), validation.text(v, f"tag {k!r}")) for k, v in tags.items()]
        self._ws.metadata.log_batch(tags=rows)

    def remove_tags(self, keys: str | Iterable[str]) -> None:
        for key in [keys] if isinstance(keys, str) else keys:
            self._ws.metadata.delete_tag(self.id, key)

    def get_tags(self) -> dict[str, str]:
        return dict(self._refresh().tags)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add write-once properties; re-adding the same value is fine, changing one raises ValidationError."""
        clean = {validation.key(k, "property key"): validation.text(v, f"property {k!r}") for k, v in properties.items()}
        self._ws.metadata.add_properties(self.id, clean)

    def get_properties(self) -> dict[str, str]:
        return dict(self._refresh().properties)

    # -- files -------------------------------------------------------------------------------
    def _put(self, items: list[tuple[str, Any]], show_progress: bool | None) -> None:
        from runyard.store import run_files

        run_files.put(self._ws, self.id, items, show_progress)

    def _files(self, prefix: str | None = None) -> list[tuple[str, int]]:
        return [(a.path, a.size) for a in self._ws.metadata.list_artifacts(self.id, prefix)]

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> str:
        """Copy a stored file out; ``output_file_path`` may be a file path or an existing folder (default: cwd)."""
        name = validation.artifact_path(name)
        dest = _download_target(name, output_file_path)
        self._ws.artifacts.get_file(self.id, name, str(dest))
        return str(dest)

    # -- children ----------------------------------------------------------------------------
    def register_model(self, model_name: str, model_path: str = "outputs", tags: Mapping[str, Any] | None = None,
                       properties: Mapping[str, Any] | None = None, model_framework: str | None = None,
                       model_framework_version: str | None = None, description: str | None = None,
                       datasets: Any = None, resource_configuration: Any = None, **_azure_only: Any):
        """Register the run's stored file or folder ``model_path`` (e.g. ``outputs/model``) as the next version of
        ``model_name``; the model records this run as its source."""
        from runyard.model import register_from_run

        return register_from_run(self, model_name, model_path, tags=tags, properties=properties,
                                 model_framework=model_framework, model_framework_version=model_framework_version,
                                 description=description, datasets=datasets,
                                 resource_configuration=resource_configuration)

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> "Run":
        """Start a child run (status Running); it is completed at process exit if you do not complete it."""
        info = self._ws.metadata.create_run(
            self.experiment.id,
            run_id=validation.run_id(run_id) if run_id else None,
            parent_run_id=self.id,
            display_name=validation.key(name, "child run name") if name else None,
            run_type="child",
            status=RunStatus.RUNNING,
        )
        child = Run(self.experiment, info.run_id, outputs=outputs, _info=info)
        owned.own(child)
        return child

    def create_children(self, count: int | None = None, tag_key: str | None = None, tag_values: list[str] | None = None) -> list["Run"]:
        """Start ``count`` child runs, or one per value in ``tag_values`` tagged ``tag_key=value``."""
        if tag_values is not None:
            if not tag_key:
                raise ValidationError("create_children: tag_values needs tag_key")
            children = [self.child_run() for _ in tag_values]
            for child, value in zip(children, tag_values, strict=True):
                child.tag(tag_key, value)
            return children
        if count is None or count < 1:
            raise ValidationError("create_children: give count >= 1 or tag_key with tag_values")
        return [self.child_run() for _ in range(count)]

    def get_children(self, recursive: bool = False, tags: Mapping[str, str] | None = None) -> Iterator["Run"]:
        """Child runs, newest first; with ``recursive=True`` their descendants too, level by level.

        A level is read with one query per page of parents, not one per run: a sweep's thousand trials cost a few.
        """
        level = [self.id]
        while level:
            next_level: list[str] = []
            for i in range(0, len(level), _PARENTS_PER_QUERY):
                for info in self._ws.metadata.iter_runs(parent_run_id=level[i : i + _PARENTS_PER_QUERY]):
                    next_level.append(info.run_id)
                    if _matches(info.tags, tags):
                        yield Run(self.experiment, info.run_id, _info=info)
            level = next_level if recursive else []

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Mark the run Running."""
        self._set_status(RunStatus.RUNNING)

    def complete(self, _set_status: bool = True) -> None:
        """Flush metrics, upload the tracked outputs folder, and mark the run Completed."""
        self._finish(RunStatus.COMPLETED, _set_status=_set_status)

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Mark the run Failed, recording the error (an exception or a message)."""
        self._finish(RunStatus.FAILED, error=_error_dict(error_details, error_code), _set_status=_set_status)

    def cancel(self) -> None:
        """Cancel the run. A submitted run's compute target stops its whole process tree (SIGTERM, then SIGKILL)
        and the run ends Canceled; an interactive run is marked Canceled. Canceling a finished run does nothing."""
        target = self._target()
        if target is None:
            self._finish(RunStatus.CANCELED)
        else:
            target.cancel(self.id)
            self._refresh()

    def _target(self):
        """The compute target of a submitted run (None for interactive runs)."""
        if not self._info.compute_target:
            return None
        from runyard.compute import get_target

        return get_target(self._ws, self._info.compute_target)

    def _supervised_here(self) -> bool:
        """This process is a submitted run's script: its supervisor decides the final status."""
        return bool(self._info.compute_target) and os.environ.get(env_vars.RUN_ID) == self.id

    def wait_for_completion(
        self, show_output: bool = False, wait_post_processing: bool = False, raise_on_error: bool = True
    ) -> dict[str, Any]:
        """Wait until the run ends; return ``get_details()``.

        Args:
            show_output: stream the output of the run's rank 0 as it is printed, then an execution summary.
            raise_on_error: raise RunFailed (with the error and the failing rank's last lines) if it Failed.
            wait_post_processing: accepted for Azure ML compatibility; a runyard run ends after its post-processing.
        """
        import sys

        target = self._target()
        if show_output:
            print(f"RunId: {self.id}\n", flush=True)
            description = target.describe(self.id) if target is not None else None
            ahead = description.details.get("queue_position") if description else None
            if ahead is not None and (ahead > 0 or not description.details.get("slots_free", 0)):  # it waits
                line = "next in line" if ahead == 0 else f"{ahead} run(s) ahead of it"
                print(f"Queued on {target.name}: {line}; it starts when a slot frees up\n", flush=True)
            if target is not None:
                from runyard.progress import show_build

                show_build(target.build_log_iter(self.id, follow=True))
                for text in target.log_iter(self.id, rank=0, follow=True):
                    sys.stdout.write(text)
                    sys.stdout.flush()
        started = time.monotonic()
        while not self._refresh().status.is_terminal():
            time.sleep(min(0.5, 0.02 + 0.05 * (time.monotonic() - started)))  # quick for short runs, then calm
        details = self.get_details()
        if show_output:
            print(f"\nExecution Summary\n=================\nRunId: {self.id}\nStatus: {details['status']}"
                  + (f"\nError: {details['error'].get('message')}" if details.get("error") else ""), flush=True)
        if raise_on_error and self._info.status == RunStatus.FAILED:
            error = self._info.error or {}
            tail = "\n".join(error.get("last_lines") or [])
            where = error.get("where") or f"rank {error.get('rank', 0)}"
            raise RunFailed(f"run {self.id} failed: {error.get('message', 'no error recorded')}"
                            + (f"\nlast lines of {where}:\n{tail}" if tail else ""))
        return details

    def _finish(self, status: RunStatus, error: dict | None = None, _set_status: bool = True) -> None:
        current = self._refresh().status
        if status == RunStatus.COMPLETED and self._supervised_here() and not current.is_terminal():
            self.flush()  # a script completing its own submitted run: the supervisor completes it at exit
            return
        if current.is_terminal():
            owned.disown(self)
            if current == status:
                return  # finishing twice the same way is harmless
            raise InvalidStatusTransition(f"run {self.id} is already {current.value}; it cannot become {status.value}")
        flushed = self.flush()
        try:
            if self._outputs and Path(self._outputs).is_dir():
                self.upload_folder("outputs", self._outputs)
        except RunyardError as exc:
            status, error = RunStatus.FAILED, dict(error or {}, message=f"could not upload outputs: {exc}")
        owned.disown(self)
        if _set_status:
            if not flushed:
                error = dict(error or {}, metrics=f"some metrics were still being written: {self._logger.last_error}")
            self._set_status(status, error=error)

    def _set_status(self, status: RunStatus, **kwargs: Any) -> None:
        self._info = self._ws.metadata.set_status(self.id, status, **kwargs)

    # -- listing -----------------------------------------------------------------------------
    @staticmethod
    def list(
        experiment: "Experiment",
        type: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        status: str | None = None,
        include_children: bool = False,
    ) -> Iterator["Run"]:
        """Runs of an experiment, newest first, filtered by type, tags, properties and status."""
        store = experiment.workspace.metadata
        statuses = [RunStatus.parse(status)] if status else None
        for info in store.iter_runs(experiment_id=experiment.id, top_level_only=not include_children, statuses=statuses):
            if type and info.run_type != type:
                continue
            if not (_matches(info.tags, tags) and _matches(info.properties, properties)):
                continue
            yield Run._of(experiment, info)


def _class_for(info) -> type["Run"]:
    """The Run class of a stored run: a run type a feature adds has its own (a sweep's parent run: HyperDriveRun,
    with its leaderboard methods), registered as ``plugins.RUN_TYPES``."""
    if info.run_type in _PLAIN_RUN_TYPES:
        return Run
    try:
        return plugins.load(plugins.RUN_TYPES, info.run_type)
    except LookupError:
        return Run


class OfflineRun(_RunBase):
    """What ``Run.get_context()`` returns outside runyard: prints what is logged, keeps it in memory."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.id = f"OfflineRun_{uuid.uuid4()}"
        self.display_name = name or self.id
        self.experiment = None
        self._records: list[MetricRecord] = []
        self._stored: dict[str, Any] = {}  # name → local path, or the bytes of an uploaded stream
        self._tags: dict[str, str] = {}
        self._properties: dict[str, str] = {}
        self._status = RunStatus.RUNNING
        self.parent: OfflineRun | None = None

    @property
    def input_datasets(self) -> dict[str, Any]:
        """Outside a submitted run there are no inputs (paths come from the script's own arguments)."""
        return {}

    def _emit(self, record: MetricRecord) -> None:
        self._records.append(record)
        print(f"Attempted to log {record.kind} metric {record.name}:\n{record.value}")

    def get_metrics(self, name: str | None = None, recursive: bool = False, **_: Any) -> dict[str, Any]:
        shaped = shape_metrics((r.name, r.value, r.kind) for r in self._records if name in (None, r.name))
        return {self.id: shaped} if recursive else shaped

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def _put(self, items: list[tuple[str, Any]], show_progress: bool | None) -> None:
        for name, source in items:
            self._stored[name] = os.fspath(source) if isinstance(source, (str, os.PathLike)) else source.read()
            print(f"Attempted to upload file {name}")

    def _files(self, prefix: str | None = None) -> list[tuple[str, int]]:
        def size(source: Any) -> int:
            return len(source) if isinstance(source, bytes) else os.path.getsize(source)

        return [(n, size(src)) for n, src in sorted(self._stored.items())
                if not prefix or n == prefix or n.startswith(prefix + "/")]

    def download_file(self, name: str, output_file_path: str | os.PathLike | None = None) -> str:
        if name not in self._stored:
            raise NotFound(f"offline run has no file {name!r}")
        dest = _download_target(name, output_file_path)
        source = self._stored[name]
        if isinstance(source, bytes):
            dest.write_bytes(source)
        else:
            shutil.copyfile(source, dest)
        return str(dest)

    def tag(self, key: str, value: Any = None) -> None:
        self._tags[validation.key(key, "tag key")] = validation.text(value, f"tag {key!r}")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for k, v in tags.items():
            self.tag(k, v)

    def get_tags(self) -> dict[str, str]:
        return dict(self._tags)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        for k, v in properties.items():
            v = validation.text(v, f"property {k!r}")
            if self._properties.get(k, v) != v:
                raise ValidationError(f"property {k!r} is already {self._properties[k]!r}; a property cannot be changed")
            self._properties[validation.key(k, "property key")] = v

    def get_properties(self) -> dict[str, str]:
        return dict(self._properties)

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> "OfflineRun":
        child = OfflineRun(name)
        child.parent = self
        return child

    def get_status(self) -> str:
        return self._status.value

    def start(self) -> None:
        self._status = RunStatus.RUNNING

    def complete(self, _set_status: bool = True) -> None:
        self._status = RunStatus.COMPLETED

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        self._status = RunStatus.FAILED

    def cancel(self) -> None:
        self._status = RunStatus.CANCELED

    def __repr__(self) -> str:
        return f"OfflineRun(id={self.id!r})"


# -- helpers -----------------------------------------------------------------------------------
def _download_target(name: str, output_file_path: str | os.PathLike | None) -> Path:
    """Where ``download_file`` writes: the given path, inside it when it is a folder, else the cwd."""
    dest = Path(output_file_path) if output_file_path is not None else Path(Path(name).name)
    return dest / Path(name).name if dest.is_dir() else dest


def _matches(values: Mapping[str, str], wanted: Mapping[str, Any] | None) -> bool:
    """Every wanted key is present; with a value other than None, with that value."""
    return not wanted or all(k in values and (v is None or values[k] == str(v)) for k, v in wanted.items())


def _as_azure_shows(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run definition as Azure prints it: an argument that stands for an input shows the input —
    ``DatasetConsumptionConfig:<name>`` for a dataset, ``$AZUREML_DATAREFERENCE_<name>`` for a datastore path or a
    run's files — where the stored definition holds ``${RUNYARD_DATA_<name>}`` (expanded when the run starts)."""
    if not definition or not definition.get("inputs") or "arguments" not in definition:
        return definition
    shown = {}
    for spec in definition["inputs"]:
        dataset = "dataset_id" in spec or "dataset" in spec
        shown["${RUNYARD_DATA_" + spec["name"] + "}"] = (
            f"DatasetConsumptionConfig:{spec['name']}" if dataset else f"$AZUREML_DATAREFERENCE_{spec['name']}")
    arguments = []
    for arg in definition["arguments"]:
        for ours, azure in shown.items():
            arg = arg.replace(ours, azure) if isinstance(arg, str) else arg
        arguments.append(arg)
    return {**definition, "arguments": arguments}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _error_dict(error: Any, code: str | None) -> dict[str, Any] | None:
    if error is None and code is None:
        return None
    if isinstance(error, BaseException):
        import traceback

        out = {"message": f"{type(error).__name__}: {error}", "type": type(error).__name__,
               "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))[-8000:]}
    elif isinstance(error, Mapping):
        out = {str(k): v for k, v in error.items()}
    else:
        out = {"message": "" if error is None else str(error)}
    if code:
        out["code"] = code
    return out


class Experiment:
    """``Experiment(ws, "name")`` gets the experiment, creating it on first use.

    Names are letters, digits, '_', '-' and '.', up to 255 characters.
    """

    def __init__(self, workspace: "Workspace", name: str, **_: Any) -> None:
        self.workspace = workspace
        self.name = validation.experiment_name(name)
        self._info = workspace.metadata.get_or_create_experiment(name)
        self.id = self._info.id

    @classmethod
    def _from_info(cls, workspace: "Workspace", info: "ExperimentInfo") -> "Experiment":
        exp = cls.__new__(cls)
        exp.workspace, exp.name, exp._info, exp.id = workspace, info.name, info, info.id
        return exp

    @staticmethod
    def list(workspace: "Workspace") -> list["Experiment"]:
        return list(workspace.experiments.values())

    def start_logging(
        self, *args: Any, display_name: str | None = None, outputs: str | bool | None = None, **kwargs: Any
    ) -> "Run":
        """Start an interactive run (status Running) for logging from this process.

        Args:
            display_name: a friendly name shown in listings.
            outputs: a folder uploaded as the run's ``outputs/`` when the run completes; default ``./outputs``,
                ``False`` for none.

        The run is completed when you call ``complete()`` or leave its ``with`` block; if you do neither, it is
        marked Completed (or Failed, on an uncaught exception) when the process exits.
        """
        info = self.workspace.metadata.create_run(
            self.id,
            display_name=validation.key(display_name, "display name") if display_name else None,
            run_type="interactive",
            status=RunStatus.RUNNING,
        )
        tracked = None if outputs is False else str(Path(outputs if isinstance(outputs, str) else "outputs").absolute())
        run = Run(self, info.run_id, outputs=tracked, _info=info)
        owned.own(run)
        return run

    def submit(self, config: Any, tags: Mapping[str, Any] | None = None, display_name: str | None = None) -> "Run":
        """Submit a ``ScriptRunConfig`` or an ``Estimator``; returns the run at once (status Queued).

        The code in ``source_directory`` is snapshotted, the run is recorded, and the compute target starts it
        (locally: in a detached supervisor process, so the run goes on if this process exits). Everything is
        validated first: a bad spec raises before anything is stored or started.

        Args:
            tags: tags set on the run.
            display_name: a friendly name for the run.
        """
        from runyard.submission import submit

        info = submit(self.workspace, self.id, self.name, config, tags=tags, display_name=display_name)
        return Run._of(self, info)

    @property
    def tags(self) -> dict[str, str]:
        """The experiment's tags (read fresh from the store)."""
        return dict(self.workspace.metadata.get_experiment(self.id).tags)

    def tag(self, key: str, value: str | None = None) -> None:
        """Tag the experiment; ``value`` may be omitted (the tag is then present with an empty value)."""
        self.workspace.metadata.set_experiment_tags(
            self.id, {validation.key(key, "tag key"): validation.text(value, f"tag {key!r}")}
        )

    def remove_tags(self, tags: list[str]) -> None:
        self.workspace.metadata.set_experiment_tags(self.id, {key: None for key in tags})

    def get_runs(
        self,
        type: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        include_children: bool = False,
        status: str | None = None,
    ) -> Iterator["Run"]:
        """Runs of this experiment, newest first."""
        return Run.list(self, type=type, tags=tags, properties=properties, status=status, include_children=include_children)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r}, workspace={self.workspace.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.id == self.id and other.workspace == self.workspace

    def __hash__(self) -> int:
        return hash((self.id, self.name))


# The workspace (below this module) hands out experiments and runs through these (Workspace.experiments, .get_run).
plugins.register(plugins.FEATURES, "Experiment", Experiment)
plugins.register(plugins.FEATURES, "Run", Run)
