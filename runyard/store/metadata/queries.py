"""The metadata store's everyday calls — experiments, runs and their statuses and heartbeats, ``log_batch``, metrics,
the artifact index — as SQL text, written once.

``SqlMetadataStore`` runs them through SQLAlchemy on SQLite and PostgreSQL. A SQLite workspace is opened as a
``SqliteStore`` (sqlite_store.py): it runs them with the standard library's ``sqlite3`` and imports SQLAlchemy
(~0.2 s of a 2-core machine, most of what a read command costs) only for any other call. So ``runyard runs list``,
``runyard submit``, a run's supervisor and a training script that logs start without it.

Nothing here imports SQLAlchemy. The SQL is portable (SQLite and PostgreSQL) with named parameters (``:name``),
which ``sqlite3`` and SQLAlchemy's ``text()`` both take.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from runyard import env_vars, plugins
from runyard.errors import InvalidStatusTransition, NotFound, StoreError, ValidationError
from runyard.ids import new_run_id
from runyard.status import RunStatus
from runyard.store.metadata.entities import ArtifactInfo, ExperimentInfo, LatestMetric, MetricRecord, RunInfo
from runyard.store.metadata.values import METRIC_COLUMNS, decode, latest_rows, metric_tuple

# The newest revision in migrations/versions (a test keeps them equal). Knowing it without Alembic or SQLAlchemy lets
# every process that opens a store check the schema with one query.
HEAD = "0007"

IN_CHUNK = 500  # SQLite allows 32766 bound parameters per statement; keep IN lists well below it
REAP_EVERY = 5.0  # seconds between stale-run checks per store
TERMINAL = tuple(s.value for s in RunStatus if s.is_terminal())
STARTED = frozenset({RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.COMPLETED})
PROGRESS = frozenset({RunStatus.QUEUED, RunStatus.PREPARING, RunStatus.STARTING, RunStatus.RUNNING})
# Runs failed by a reader for a lost heartbeat (their driver may still speak: see heartbeat, set_status); the
# statement binds :failed and :lost.
HEARTBEAT_LOST = "(status = :failed AND error LIKE :lost)"
HEARTBEAT_LOST_PATTERN = '%"code": "HeartbeatLost"%'

Query = Callable[[str, dict], list]  # (sql, params) -> rows with attribute access (row.run_id) and indexes (row[0])


class Conflict(Exception):
    """A write broke a constraint (a missing run, a duplicate key): what each executor's integrity error becomes."""


class Writer(Protocol):
    """What a write transaction offers ``CoreQueries``."""

    dialect: str  # "sqlite" or "postgresql"

    def rows(self, sql: str, params: dict) -> list: ...

    def run(self, sql: str, params: dict | list[dict]) -> int:
        """Execute (once per dict of a list); the rows changed."""

    def insert_metrics(self, rows: list[tuple]) -> None:
        """Rows in ``METRIC_COLUMNS`` order, the fastest way the driver has."""


def heartbeat_timeout() -> float:
    """Seconds without a heartbeat after which an unfinished run counts as dead (RUNYARD_HEARTBEAT_TIMEOUT)."""
    return float(os.environ.get(env_vars.HEARTBEAT_TIMEOUT, 60))


def placeholders(prefix: str, values: Sequence[Any], params: dict) -> str:
    """``:prefix0, :prefix1, …`` for an IN list, its values added to ``params``."""
    names = [f"{prefix}{i}" for i in range(len(values))]
    params.update(zip(names, values))
    return ", ".join(f":{name}" for name in names)


def like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- the SQL ------------------------------------------------------------------------------------
RUN_COLUMNS = "runs.*, experiments.name AS experiment_name"


def run_filter(experiment_id: int | None = None, parent_run_id: str | Sequence[str] | None = None,
               top_level_only: bool = False, statuses: Sequence[RunStatus | str] | None = None,
               search: str | None = None, run_ids: Sequence[str] | None = None) -> tuple[str, dict]:
    """The WHERE clause of ``list_runs``/``count_runs`` (never empty) and its parameters."""
    cond, params = ["1 = 1"], {}
    if run_ids is not None:
        cond.append(f"runs.run_id IN ({placeholders('id', list(run_ids), params) or 'NULL'})")
    if experiment_id is not None:
        cond.append("runs.experiment_id = :experiment_id")
        params["experiment_id"] = experiment_id
    if isinstance(parent_run_id, str):
        cond.append("runs.parent_run_id = :parent_run_id")
        params["parent_run_id"] = parent_run_id
    elif parent_run_id is not None:
        cond.append(f"runs.parent_run_id IN ({placeholders('parent', list(parent_run_id), params) or 'NULL'})")
    if top_level_only:
        cond.append("runs.parent_run_id IS NULL")
    if statuses:
        values = [RunStatus.parse(s).value for s in statuses]
        cond.append(f"runs.status IN ({placeholders('status', values, params)})")
    if search:
        params["search"] = "%" + like_escaped(search).lower() + "%"
        cond.append("(lower(runs.run_id) LIKE :search ESCAPE '\\' "
                    "OR lower(coalesce(runs.display_name, '')) LIKE :search ESCAPE '\\')")
    return " AND ".join(cond), params


def run_order(sort: str | None, params: dict) -> tuple[str, str]:
    """(JOIN clause, ORDER BY list) for ``sort``: created (default, newest first), name, status, duration,
    metric:NAME, param:NAME; a leading '-' sorts descending. Runs without the metric or param come last either way."""
    key = (sort or "-created").strip()
    descending = key.startswith("-")
    key = key.lstrip("-+")
    join = ""
    if key.startswith("metric:"):
        join = "LEFT OUTER JOIN metric_latest AS sort_metric ON sort_metric.run_id = runs.run_id " \
               "AND sort_metric.name = :sort_name"
        params["sort_name"], column = key[7:], "sort_metric.value"
    elif key.startswith("param:"):
        join = "LEFT OUTER JOIN run_params AS sort_param ON sort_param.run_id = runs.run_id " \
               "AND sort_param.\"key\" = :sort_name"
        params["sort_name"], column = key[6:], "sort_param.value"
    else:
        columns = {"created": "runs.created_at", "name": "coalesce(runs.display_name, runs.run_id)",
                   "status": "runs.status", "duration": "(coalesce(runs.end_time, :now) - runs.start_time)"}
        if key not in columns:
            raise ValidationError(f"cannot sort runs by {key!r}: use created, name, status, duration, metric:NAME "
                                  "or param:NAME")
        column = columns[key]
        if key == "duration":
            params["now"] = time.time()
    direction = "DESC" if descending else "ASC"
    return join, f"({column} IS NULL), {column} {direction}, runs.created_at DESC, runs.run_id DESC"


def stale_filter(timeout: float, params: dict) -> str:
    """Unfinished runs whose heartbeat is older than ``timeout`` seconds (their driver is gone)."""
    params["stale_before"] = time.time() - timeout
    return (f"runs.status NOT IN ({placeholders('terminal', TERMINAL, params)}) "
            "AND runs.heartbeat_at IS NOT NULL AND runs.heartbeat_at < :stale_before")


# -- row → entity ------------------------------------------------------------------------------
def experiment_info(row) -> ExperimentInfo:
    return ExperimentInfo(id=row.id, name=row.name, created_at=row.created_at, tags=json.loads(row.tags or "{}"))


def run_info(row, extra: dict[str, dict[str, str]]) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        experiment_name=row.experiment_name,
        status=RunStatus.parse(row.status),
        created_at=row.created_at,
        parent_run_id=row.parent_run_id,
        display_name=row.display_name,
        run_type=row.run_type,
        description=row.description,
        start_time=row.start_time,
        end_time=row.end_time,
        heartbeat_at=row.heartbeat_at,
        error=json.loads(row.error) if row.error else None,
        exit_code=row.exit_code,
        compute_target=row.compute_target,
        definition=json.loads(row.definition) if row.definition else None,
        **extra,
    )


class CoreQueries:
    """The calls, for any executor: a subclass provides ``_reading(what)``, a context manager that yields a
    ``Query`` run inside one read transaction, ``_writing(what)``, one that yields a ``Writer`` inside one write
    transaction (raising ``Conflict`` for an integrity error), and ``_last_reap`` (``float("-inf")`` at first)."""

    def _reading(self, what: str) -> "contextmanager[Query]":  # pragma: no cover - abstract
        raise NotImplementedError

    def _writing(self, what: str) -> "contextmanager[Writer]":  # pragma: no cover - abstract
        raise NotImplementedError

    def _reap_stale_runs(self) -> None:
        """The next reader fails runs whose driver died (no server does it); at most every few seconds. Providers of
        ``plugins.STALE_RUNS`` (the local target's) say which of the candidates still have a live driver on this
        machine (an outage, not a death, kept it from heartbeating: spared) and clean up after those failed."""
        now = time.monotonic()
        if now - self._last_reap < REAP_EVERY:
            return
        self._last_reap = now
        try:
            candidates = self._stale_run_ids(heartbeat_timeout())
            if not candidates:
                return
            handlers = plugins.each(plugins.STALE_RUNS)
            spare = {run_id for handler in handlers for run_id in handler.alive(candidates)}
            failed = self.fail_stale_runs(heartbeat_timeout(), spare=spare)
        except StoreError:
            return  # a read must not fail because housekeeping could not write (e.g. a read-only replica)
        for handler in handlers:  # what the dead drivers left on this machine: processes to stop, files to upload
            try:
                handler.clean_up(failed)
            except Exception as exc:  # noqa: BLE001 - housekeeping must not fail the read that triggered it
                print(f"runyard: cleaning up after runs {', '.join(failed)} failed: {exc}", file=sys.stderr)

    # -- experiments ---------------------------------------------------------------------------
    def get_experiment(self, name_or_id: str | int) -> ExperimentInfo:
        column = "id" if isinstance(name_or_id, int) else "name"
        with self._reading("read experiment") as query:
            rows = query(f"SELECT * FROM experiments WHERE {column} = :key", {"key": name_or_id})
        if not rows:
            raise NotFound(f"experiment {name_or_id!r} does not exist")
        return experiment_info(rows[0])

    def list_experiments(self) -> list[ExperimentInfo]:
        with self._reading("list experiments") as query:
            return [experiment_info(r) for r in query("SELECT * FROM experiments ORDER BY name", {})]

    def get_or_create_experiment(self, name: str) -> ExperimentInfo:
        try:
            return self.get_experiment(name)
        except NotFound:
            pass
        with self._writing("create experiment") as writer:
            # Two processes may race to create it: the unique name makes the loser a no-op.
            writer.run("INSERT INTO experiments (name, created_at, tags) VALUES (:name, :now, '{}') "
                       "ON CONFLICT (name) DO NOTHING", {"name": name, "now": time.time()})
        return self.get_experiment(name)

    def set_experiment_tags(self, experiment_id: int, tags: Mapping[str, str | None]) -> ExperimentInfo:
        with self._writing("set experiment tags") as writer:  # the write lock makes read-modify-write safe
            rows = writer.rows("SELECT tags FROM experiments WHERE id = :id", {"id": experiment_id})
            if not rows:
                raise NotFound(f"experiment {experiment_id!r} does not exist")
            current = json.loads(rows[0][0] or "{}")
            for key, value in tags.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            writer.run("UPDATE experiments SET tags = :tags WHERE id = :id", {"tags": json.dumps(current), "id": experiment_id})
        return self.get_experiment(experiment_id)

    # -- runs ----------------------------------------------------------------------------------
    def create_run(self, experiment_id: int, *, run_id: str | None = None, parent_run_id: str | None = None,
                   display_name: str | None = None, run_type: str = "interactive",
                   status: RunStatus = RunStatus.NOT_STARTED, tags: Mapping[str, str] | None = None,
                   properties: Mapping[str, str] | None = None, compute_target: str | None = None,
                   definition: Mapping[str, Any] | None = None, heartbeat: bool = False) -> RunInfo:
        exp = self.get_experiment(int(experiment_id))
        run_id = run_id or new_run_id(exp.name)
        now = time.time()
        status = RunStatus.parse(status)
        row = {
            "run_id": run_id, "experiment_id": exp.id, "parent_run_id": parent_run_id, "display_name": display_name,
            "run_type": run_type, "status": status.value, "created_at": now,
            "start_time": now if status in STARTED else None, "end_time": now if status.is_terminal() else None,
            "heartbeat_at": now if heartbeat else None, "compute_target": compute_target,
            "definition": json.dumps(dict(definition)) if definition is not None else None,
        }
        try:
            with self._writing("create run") as writer:
                writer.run(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})", row)
                for table, values in (("run_tags", tags), ("run_properties", properties)):
                    if values:
                        writer.run(f'INSERT INTO {table} (run_id, "key", value) VALUES (:run_id, :key, :value)',
                                   [{"run_id": run_id, "key": k, "value": v} for k, v in values.items()])
        except Conflict as exc:
            if parent_run_id is not None:
                self.get_run(parent_run_id)  # NotFound names the missing parent
            raise ValidationError(f"run {run_id!r} already exists") from exc
        return self.get_run(run_id)

    def set_status(self, run_id: str, status: RunStatus, *, error: Mapping | None = None,
                   exit_code: int | None = None, at: float | None = None) -> RunInfo:
        status = RunStatus.parse(status)
        now = time.time() if at is None else at
        params: dict[str, Any] = {"run_id": run_id, "status": status.value, "now": now}
        sets = ["status = :status"]
        if status in STARTED:
            sets.append("start_time = coalesce(start_time, :now)")
        if status.is_terminal():
            sets.append("end_time = :now")
        if error is not None:
            sets.append("error = :error")
            params["error"] = json.dumps(dict(error), default=str)
        elif status != RunStatus.FAILED:
            sets.append("error = NULL")  # a run failed for a lost heartbeat whose driver speaks again loses that error
        if exit_code is not None:
            sets.append("exit_code = :exit_code")
            params["exit_code"] = exit_code
        # A cancel request is not undone by a driver reporting progress: only Finalizing or an end follows it.
        kept = TERMINAL + ((RunStatus.CANCEL_REQUESTED.value,) if status in PROGRESS else ())
        with self._writing("set run status") as writer:
            changed = writer.run(f"UPDATE runs SET {', '.join(sets)} WHERE run_id = :run_id AND "
                                 f"(status NOT IN ({placeholders('kept', kept, params)}) OR {HEARTBEAT_LOST})",
                                 {**params, "lost": HEARTBEAT_LOST_PATTERN, "failed": RunStatus.FAILED.value})
        info = self.get_run(run_id)  # NotFound for an unknown id
        if not changed and info.status == RunStatus.CANCEL_REQUESTED and status in PROGRESS:
            return info
        if not changed and info.status != status:
            raise InvalidStatusTransition(
                f"run {run_id} is already {info.status.value}; a finished run's status cannot change to {status.value}"
            )
        return info

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        if not run_ids:
            return
        params: dict[str, Any] = {"now": time.time(), "running": RunStatus.RUNNING.value,
                                  "failed": RunStatus.FAILED.value, "lost": HEARTBEAT_LOST_PATTERN}
        ids = placeholders("run", list(run_ids), params)
        with self._writing("heartbeat") as writer:
            writer.run(f"UPDATE runs SET heartbeat_at = :now WHERE run_id IN ({ids}) "
                       f"AND status NOT IN ({placeholders('terminal', TERMINAL, params)})", params)
            # A reader failed it while its driver could not reach the store (an outage longer than the heartbeat
            # timeout): the driver is alive after all, so the run is running again.
            writer.run(f"UPDATE runs SET heartbeat_at = :now, status = :running, error = NULL, end_time = NULL "
                       f"WHERE run_id IN ({ids}) AND {HEARTBEAT_LOST}", params)

    def fail_stale_runs(self, timeout: float, spare: Iterable[str] = ()) -> list[str]:
        ids = [run_id for run_id in self._stale_run_ids(timeout) if run_id not in set(spare)]
        if not ids:
            return []
        params: dict[str, Any] = {"failed": RunStatus.FAILED.value, "error": json.dumps({
            "message": f"heartbeat lost: the process driving this run stopped (killed or crashed) without finishing "
                       f"it; no heartbeat for more than {timeout:g} s",
            "code": "HeartbeatLost",
        })}
        with self._writing("fail stale runs") as writer:
            writer.run(f"UPDATE runs SET status = :failed, end_time = heartbeat_at, error = :error "
                       f"WHERE run_id IN ({placeholders('run', ids, params)}) AND {stale_filter(timeout, params)}", params)
        return ids

    def update_run(self, run_id: str, *, display_name: str | None = None, description: str | None = None) -> None:
        values = {k: v for k, v in (("display_name", display_name), ("description", description)) if v is not None}
        if not values:
            return
        with self._writing("update run") as writer:
            changed = writer.run(f"UPDATE runs SET {', '.join(f'{k} = :{k}' for k in values)} WHERE run_id = :run_id",
                                 {**values, "run_id": run_id})
        if not changed:
            raise NotFound(f"run {run_id!r} does not exist")

    def get_run(self, run_id: str) -> RunInfo:
        runs = self._runs("runs.run_id = :run_id", {"run_id": run_id}, limit=1)
        if not runs:
            raise NotFound(f"run {run_id!r} does not exist")
        return runs[0]

    def list_runs(self, *, experiment_id: int | None = None, parent_run_id: str | Sequence[str] | None = None,
                  top_level_only: bool = False, statuses: Sequence[RunStatus] | None = None, limit: int = 100,
                  offset: int = 0, search: str | None = None, sort: str | None = None,
                  run_ids: Sequence[str] | None = None) -> list[RunInfo]:
        where, params = run_filter(experiment_id, parent_run_id, top_level_only, statuses, search, run_ids)
        return self._runs(where, params, limit=limit, offset=offset, sort=sort)

    def count_runs(self, *, experiment_id: int | None = None, top_level_only: bool = False,
                   parent_run_id: str | Sequence[str] | None = None, statuses: Sequence[RunStatus] | None = None,
                   search: str | None = None) -> int:
        where, params = run_filter(experiment_id, parent_run_id, top_level_only, statuses, search)
        with self._reading("count runs") as query:
            return int(query(f"SELECT count(*) FROM runs WHERE {where}", params)[0][0])

    def _runs(self, where: str, params: dict, *, limit: int, offset: int = 0, sort: str | None = None) -> list[RunInfo]:
        self._reap_stale_runs()
        join, order = run_order(sort, params)
        sql = (f"SELECT {RUN_COLUMNS} FROM runs JOIN experiments ON experiments.id = runs.experiment_id {join} "
               f"WHERE {where} ORDER BY {order} LIMIT :limit OFFSET :offset")
        with self._reading("read runs") as query:
            rows = query(sql, {**params, "limit": limit, "offset": offset})
            ids = [r.run_id for r in rows]
            extra = {name: _key_values(query, table, ids)
                     for name, table in (("tags", "run_tags"), ("properties", "run_properties"), ("params", "run_params"))}
        return [run_info(r, {name: kv.get(r.run_id, {}) for name, kv in extra.items()}) for r in rows]

    def _stale_run_ids(self, timeout: float) -> list[str]:
        # A read first: the common case (nothing stale) must not take SQLite's write lock.
        params: dict = {}
        where = stale_filter(timeout, params)
        with self._reading("find stale runs") as query:
            return [r[0] for r in query(f"SELECT runs.run_id FROM runs WHERE {where} LIMIT {IN_CHUNK}", params)]

    # -- artifact index ------------------------------------------------------------------------
    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
        if not artifacts:
            return
        rows = [{"run_id": run_id, "path": a.path, "size": a.size, "created_at": a.created_at} for a in artifacts]
        try:
            with self._writing("record artifacts") as writer:
                writer.run("INSERT INTO artifacts (run_id, path, size, created_at) VALUES (:run_id, :path, :size, "
                           ":created_at) ON CONFLICT (run_id, path) DO UPDATE SET size = excluded.size, "
                           "created_at = excluded.created_at", rows)
        except Conflict as exc:
            raise NotFound(f"run {run_id!r} does not exist") from exc

    def list_artifacts(self, run_id: str, prefix: str | None = None) -> list[ArtifactInfo]:
        sql, params = "SELECT path, size, created_at FROM artifacts WHERE run_id = :run_id", {"run_id": run_id}
        if prefix:
            prefix = prefix.rstrip("/")
            sql += " AND (path = :prefix OR path LIKE :under ESCAPE '\\')"
            params.update(prefix=prefix, under=like_escaped(prefix) + "/%")
        with self._reading("list artifacts") as query:
            return [ArtifactInfo(*r) for r in query(sql + " ORDER BY path", params)]

    # -- metrics -------------------------------------------------------------------------------
    def get_metric_history(self, run_ids: Sequence[str], names: Sequence[str] | None = None) -> list[MetricRecord]:
        out: list[MetricRecord] = []
        with self._reading("read metrics") as query:
            for i in range(0, len(run_ids), IN_CHUNK):
                params: dict = {}
                sql = ("SELECT run_id, name, value, value_str, vtype, step, \"timestamp\", kind FROM metrics "
                       f"WHERE run_id IN ({placeholders('run', run_ids[i: i + IN_CHUNK], params)})")
                if names:
                    sql += f" AND name IN ({placeholders('name', list(names), params)})"
                rows = query(sql + " ORDER BY run_id, name, \"timestamp\", id", params)
                out.extend(MetricRecord(r[0], r[1], decode(r[2], r[3], r[4]), r[5], r[6], r[7]) for r in rows)
        return out

    def get_latest_metrics(self, run_ids: Sequence[str]) -> list[LatestMetric]:
        out: list[LatestMetric] = []
        with self._reading("read latest metrics") as query:
            for i in range(0, len(run_ids), IN_CHUNK):
                params: dict = {}
                rows = query("SELECT run_id, name, value, value_str, vtype, step, \"timestamp\", kind, \"count\" "
                             f"FROM metric_latest WHERE run_id IN ({placeholders('run', run_ids[i: i + IN_CHUNK], params)}) "
                             "ORDER BY run_id, name", params)
                out.extend(LatestMetric(r[0], r[1], decode(r[2], r[3], r[4]), *r[5:]) for r in rows)
        return out


    # -- logging ---------------------------------------------------------------------------------
    def delete_tag(self, run_id: str, key: str) -> None:
        with self._writing("delete tag") as writer:
            writer.run('DELETE FROM run_tags WHERE run_id = :run_id AND "key" = :key', {"run_id": run_id, "key": key})

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in properties.items()]
        if not rows:
            return
        try:
            with self._writing("add properties") as writer:
                insert_write_once(writer, "run_properties", rows, "property")
        except Conflict as exc:
            raise NotFound(f"run {run_id!r} does not exist") from exc

    def log_batch(self, metrics: Sequence[MetricRecord] = (), params: Iterable[tuple[str, str, str]] = (),
                  tags: Iterable[tuple[str, str, str]] = (), journal: tuple[str, int] | None = None) -> None:
        param_rows = [{"run_id": r, "key": k, "value": v} for r, k, v in params]
        tag_rows = [{"run_id": r, "key": k, "value": v} for r, k, v in tags]
        try:
            with self._writing("log values") as writer:
                if journal is not None:
                    metrics = _past_mark(writer, journal, metrics)
                rows = [metric_tuple(m) for m in metrics]
                if rows:
                    writer.insert_metrics(rows)
                    writer.run(UPSERT_LATEST, latest_rows(rows))
                if param_rows:
                    insert_write_once(writer, "run_params", param_rows, "param")
                if tag_rows:
                    writer.run(UPSERT_TAG, tag_rows)
        except Conflict as exc:
            raise NotFound(f"cannot log to a run that does not exist: {str(exc).splitlines()[0]}") from exc


# One row per (run, metric): the newest value by time, and how many values there are. (SET reads the old row.)
_NEWER = 'excluded."timestamp" >= metric_latest."timestamp"'
UPSERT_LATEST = (
    'INSERT INTO metric_latest (run_id, name, step, value, value_str, vtype, kind, "timestamp", "count") '
    'VALUES (:run_id, :name, :step, :value, :value_str, :vtype, :kind, :timestamp, :count) '
    'ON CONFLICT (run_id, name) DO UPDATE SET '
    + ", ".join(f'{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE metric_latest.{c} END'
                for c in ("value", "value_str", "vtype", "kind", "step", '"timestamp"'))
    + ', "count" = metric_latest."count" + excluded."count"'
)
UPSERT_TAG = ('INSERT INTO run_tags (run_id, "key", value) VALUES (:run_id, :key, :value) '
              'ON CONFLICT (run_id, "key") DO UPDATE SET value = excluded.value')
UPSERT_MARK = ("INSERT INTO journal_marks (journal, seq, updated_at) VALUES (:journal, :seq, :updated_at) "
               "ON CONFLICT (journal) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at")
INSERT_METRICS_QMARK = f"INSERT INTO metrics ({', '.join(METRIC_COLUMNS)}) VALUES ({', '.join('?' * len(METRIC_COLUMNS))})"


def _past_mark(writer: Writer, journal: tuple[str, int], metrics: Sequence[MetricRecord]) -> Sequence[MetricRecord]:
    """The values of ``metrics`` (journal values ``first …``) not stored yet; move the journal's mark past them."""
    name, first = journal
    lock = " FOR UPDATE" if writer.dialect == "postgresql" else ""  # SQLite's write transaction is the lock
    found = writer.rows(f"SELECT seq FROM journal_marks WHERE journal = :journal{lock}", {"journal": name})
    stored = (found[0][0] if found else 0) or 0
    end = first + len(metrics)
    if stored >= end:
        return ()
    writer.run(UPSERT_MARK, {"journal": name, "seq": end, "updated_at": time.time()})
    return metrics[stored - first:] if stored > first else metrics


def insert_write_once(writer: Writer, table: str, rows: list[dict[str, str]], what: str) -> None:
    """Insert key/values that may be repeated with the same value but never changed (params, properties)."""
    existing: dict[tuple[str, str], str] = {}
    for run_id in {r["run_id"] for r in rows}:
        for key, value in writer.rows(f'SELECT "key", value FROM {table} WHERE run_id = :run_id', {"run_id": run_id}):
            existing[(run_id, key)] = value
    fresh = {}
    for row in rows:
        old = existing.get((row["run_id"], row["key"]))
        if old is not None and old != row["value"]:
            raise ValidationError(
                f"{what} {row['key']!r} of run {row['run_id']} is already {old!r}; a {what} cannot be changed "
                f"(tried {row['value']!r}) — use a tag for values that change"
            )
        if old is None:
            fresh[(row["run_id"], row["key"])] = row
    if fresh:
        writer.run(f'INSERT INTO {table} (run_id, "key", value) VALUES (:run_id, :key, :value)', list(fresh.values()))


def _key_values(query: Query, table: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(run_ids), IN_CHUNK):
        params: dict = {}
        sql = (f"SELECT run_id, \"key\", value FROM {table} "
               f"WHERE run_id IN ({placeholders('run', run_ids[i: i + IN_CHUNK], params)}) ORDER BY \"key\"")
        for run_id, key, value in query(sql, params):
            out.setdefault(run_id, {})[key] = value
    return out
