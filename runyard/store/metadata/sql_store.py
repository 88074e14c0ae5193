"""The SQL metadata store: SQLite (WAL, embedded default) or PostgreSQL, through SQLAlchemy 2 Core."""
from __future__ import annotations

import json
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, create_engine, event, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from runyard import env_vars
from runyard.errors import NotFound, StoreError, ValidationError
from runyard.store.metadata import schema as t
from runyard.store.metadata.outage import refused, stopping
from runyard.store.metadata.api import MetadataStore
from runyard.store.metadata.entities import (
    ComputeTargetRecord,
    DatasetRecord,
    DatastoreRecord,
    RunInputRecord,
    ModelRecord,
    EnvironmentRecord,
    MetricSeries,
)
from runyard.store.metadata.migrations_runner import upgrade_to_head
from runyard.store.metadata.queries import INSERT_METRICS_QMARK, Conflict, CoreQueries
from runyard.store.metadata.values import METRIC_COLUMNS


# Seconds a store call waits for a server that refuses connections: a run's processes (and supervisors, which set
# RUNYARD_STORE_PATIENCE) ride out a restart or a full server; a command at the terminal says so soon.
_RUN_PATIENCE, _INTERACTIVE_PATIENCE = 300.0, 5.0


class _IdleCloser:
    """Closes the pooled connection of engines unused for RUNYARD_DB_IDLE_SECONDS (one daemon thread per process)."""

    _engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()
    _last_use: "weakref.WeakKeyDictionary[Any, float]" = weakref.WeakKeyDictionary()
    _thread: threading.Thread | None = None
    _lock = threading.Lock()

    @classmethod
    def watch(cls, engine: Engine) -> None:
        event.listen(engine, "checkin", lambda *_: cls._last_use.__setitem__(engine.pool, time.monotonic()))
        cls._engines.add(engine)
        with cls._lock:
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._run, name="runyard-db-idle", daemon=True)
                cls._thread.start()

    @classmethod
    def _run(cls) -> None:
        idle = float(os.environ.get(env_vars.DB_IDLE_SECONDS, 5))
        while True:
            time.sleep(max(0.2, idle / 4))
            now = time.monotonic()
            for engine in list(cls._engines):
                pool = engine.pool
                last = cls._last_use.get(pool)
                if last is not None and now - last > idle and pool.checkedout() == 0 and pool.checkedin():
                    pool.dispose()  # closes the idle connection; the next use opens one
                    cls._last_use.pop(pool, None)


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


class SqlMetadataStore(CoreQueries, MetadataStore):
    """Metadata store over a SQLAlchemy URL (``sqlite:///path.db`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"invalid metadata store URL {url!r}: {exc}") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise StoreError(
                f"unsupported metadata store {redact(url)!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
            )
        self.engine = self._make_engine(url)
        self._last_reap = float("-inf")
        self._writer = self.engine.execution_options(runyard_write=True)
        with self._errors("open"):
            self._patiently(lambda: upgrade_to_head(self.engine, lock_path=self._lock_path(parsed)), "open")

    # -- engine --------------------------------------------------------------------------------
    def _make_engine(self, url: str) -> Engine:
        if self.dialect == "sqlite":
            db = make_url(url).database
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        # One connection per process at most, closed after RUNYARD_DB_IDLE_SECONDS unused: a default server's
        # max_connections=100 then holds 100 concurrent runs (their scripts and supervisors connect in turn, and a
        # connection refused for "too many clients" is waited for, see _connect). Threads of a process share it.
        engine = create_engine(url, pool_pre_ping=True, pool_size=1, max_overflow=0, pool_timeout=3600,
                               connect_args={"connect_timeout": 10})
        _IdleCloser.watch(engine)
        return engine

    def _lock_path(self, parsed) -> str | None:
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            return parsed.database + ".migrate.lock"
        return None

    def after_fork(self) -> None:
        """Drop pooled connections inherited from a parent process (a forked rank must open its own)."""
        self.engine.dispose(close=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self, engine: Engine, what: str) -> Iterator[Connection]:
        conn = self._connect(engine, what)
        try:
            with self._errors(what), conn.begin():
                yield conn
        finally:
            conn.close()

    def _connect(self, engine: Engine, what: str) -> Connection:
        return self._patiently(engine.connect, what)

    def _patiently(self, call: Callable[[], Any], what: str) -> Any:
        """``call()``; while the server refuses connections (too many clients, starting, shutting down, not
        listening) try again with backoff for up to RUNYARD_STORE_PATIENCE seconds. Only for calls that fail before
        anything reached the database (connecting), so trying again is always safe."""
        patience = float(os.environ.get(env_vars.STORE_PATIENCE) or
                         (_RUN_PATIENCE if os.environ.get(env_vars.RUN_ID) else _INTERACTIVE_PATIENCE))
        deadline, delay = time.monotonic() + patience, 0.05
        while True:
            try:
                return call()
            except (OperationalError, DBAPIError) as exc:
                if not refused(exc) or time.monotonic() + delay > deadline or stopping():
                    with self._errors(what):
                        raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise  # a caller's mistake (duplicate id, missing parent): callers turn it into a precise error
        except (OperationalError, DBAPIError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"metadata store {redact(self.url)} failed to {what}: {reason}") from exc

    @contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        with self._transaction(self._writer, what) as conn:
            yield conn

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        with self._transaction(self.engine, what) as conn:
            yield conn

    @contextmanager
    def _reading(self, what: str) -> Iterator[Callable[[str, dict], list]]:
        """The executor of ``CoreQueries``' SQL text (one read transaction)."""
        with self._read(what) as conn:
            yield lambda sql, params: conn.execute(text(sql), params).all()

    @contextmanager
    def _writing(self, what: str) -> Iterator["_Writer"]:
        """The executor of ``CoreQueries``' writes (one write transaction)."""
        try:
            with self._write(what) as conn:
                yield _Writer(conn, self.dialect)
        except IntegrityError as exc:
            raise Conflict(str(exc.orig)) from exc


    def _insert(self, table):
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    def get_metric_series(self, run_id: str, name: str, points: int = 2000,
                          known: tuple[int, int] | None = None, after: int | None = None) -> MetricSeries:
        m = t.metrics.c
        base = and_(m.run_id == run_id, m.name == name, m.kind.in_(("scalar", "list")))
        with self._read("read metric series") as conn:
            if after is not None:  # what was logged since: by position (the (run_id, name) index holds it)
                rows = conn.execute(select(m.step, m.value, m.timestamp, m.id).where(base, m.id > after)
                                    .order_by(m.id).limit(points)).all()
                return MetricSeries([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], len(rows),
                                    rows[-1][3] if rows else after)
            if known is not None:  # (count, last step) from the latest-value table: no scan to find them
                (count, hi), lo = known, 0
            else:
                lo, hi, count = conn.execute(select(func.min(m.step), func.max(m.step), func.count()).where(base)).one()
            if not count:
                return MetricSeries([], [], [], 0, 0)
            if count <= points:
                rows = conn.execute(select(m.step, m.value, m.timestamp, m.id).where(base).order_by(m.step, m.id)).all()
                return MetricSeries([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], len(rows),
                                    max((r[3] for r in rows), default=0))
            buckets = max(1, points // 2)
            bucket = ((m.step - lo) * buckets // max(1, hi - lo + 1)).label("bucket")
            # The newest position first (from the index alone): a value logged meanwhile is then in the ranges too,
            # and ``after=last_id`` may bring it again rather than never.
            last_id = conn.execute(select(func.max(m.id)).where(m.run_id == run_id, m.name == name)).scalar() or 0
            rows = conn.execute(select(bucket, func.min(m.step), func.max(m.step), func.min(m.value), func.max(m.value),
                                       func.min(m.timestamp), func.max(m.timestamp), func.count())
                                .where(base).group_by(bucket).order_by(bucket)).all()
        steps: list[int] = []
        values: list[float | None] = []
        times: list[float] = []
        for _, s_lo, s_hi, v_lo, v_hi, t_lo, t_hi, _n in rows:  # each range: its lowest and highest value
            steps += [s_lo, s_hi]
            values += [v_lo, v_hi]
            times += [t_lo, t_hi]
        return MetricSeries(steps, values, times, sum(r[7] for r in rows), last_id)

    # -- artifact index ------------------------------------------------------------------------
    # -- models ----------------------------------------------------------------------------------
    def _register_version(self, what: str, table, name: str, insert: Callable[[Connection, Any], Any]) -> Any:
        """``insert(conn, latest row of name or None)`` in one write transaction, again when another process took
        the version number meanwhile; returns what ``insert`` returns."""
        for _attempt in range(5):
            try:
                with self._write(f"register {what}") as conn:
                    latest = conn.execute(select(table).where(table.c.name == name)
                                          .order_by(table.c.version.desc()).limit(1)).first()
                    return insert(conn, latest)
            except IntegrityError:  # another process took that version number: take the next one
                continue
        raise StoreError(f"could not register {what} {name!r}: too many concurrent registrations")

    def register_model(self, name: str, record: Mapping[str, Any]) -> ModelRecord:
        row = {"content_id": record["content_id"], "path": record["path"], "framework": record.get("framework"),
               "framework_version": record.get("framework_version"), "description": record.get("description"),
               "tags": json.dumps(dict(record.get("tags") or {})),
               "properties": json.dumps(dict(record.get("properties") or {})), "run_id": record.get("run_id"),
               "details": json.dumps(dict(record.get("details") or {})), "created_at": time.time()}
        version = self._register_version("model", t.models, name,
                                         lambda conn, latest: _insert_next(conn, t.models, latest, name=name, **row))
        return self.get_model(name, version)

    def get_model(self, name: str, version: int | None = None, alias: str | None = None) -> ModelRecord:
        m, a = t.models.c, t.model_aliases.c
        with self._read("read model") as conn:
            if alias is not None:
                version = conn.execute(select(a.version).where(a.name == name, a.alias == alias)).scalar()
                if version is None:
                    aliases = conn.execute(select(a.alias).where(a.name == name).order_by(a.alias)).scalars().all()
                    raise NotFound(f"model {name!r} has no alias {alias!r}"
                                   + (f"; aliases: {', '.join(aliases)}" if aliases else " (it has none)"))
            query = select(t.models).where(m.name == name)
            query = query.where(m.version == version) if version is not None else query.order_by(m.version.desc()).limit(1)
            row = conn.execute(query).first()
            if row is None:
                versions = conn.execute(select(m.version).where(m.name == name).order_by(m.version)).scalars().all()
                if versions:
                    raise NotFound(f"model {name!r} has no version {version}; versions: {', '.join(map(str, versions))}")
                names = conn.execute(select(m.name).distinct().order_by(m.name)).scalars().all()
                import difflib

                close = difflib.get_close_matches(name, names, n=3)
                raise NotFound(f"no model named {name!r} is registered in this workspace"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
            aliases = self._aliases(conn, [(row.name, row.version)])
        return _model(row, aliases)

    def _aliases(self, conn, keys: list[tuple[str, int]]) -> dict[tuple[str, int], list[str]]:
        a = t.model_aliases.c
        names = {n for n, _ in keys}
        out: dict[tuple[str, int], list[str]] = {}
        if names:
            for name, alias, version in conn.execute(select(a.name, a.alias, a.version).where(a.name.in_(names))
                                                     .order_by(a.alias)):
                out.setdefault((name, version), []).append(alias)
        return out

    def list_models(self, name: str | None = None, run_id: str | None = None, tags: Mapping[str, str] | None = None,
                    latest: bool = False, limit: int = 100, offset: int = 0) -> list[ModelRecord]:
        m = t.models.c
        query = select(t.models)
        if name is not None:
            query = query.where(m.name == name)
        if run_id is not None:
            query = query.where(m.run_id == run_id)
        if latest:
            newest = select(m.name, func.max(m.version).label("v")).group_by(m.name).subquery()
            query = query.join(newest, and_(m.name == newest.c.name, m.version == newest.c.v))
        query = query.order_by(m.created_at.desc(), m.name, m.version.desc())
        with self._read("list models") as conn:
            rows = conn.execute(query).all()
            if tags:  # tags live in a JSON column: filtered here, then paginated
                rows = [r for r in rows if all(json.loads(r.tags).get(k) == v for k, v in tags.items())]
            rows = rows[offset: offset + limit]
            aliases = self._aliases(conn, [(r.name, r.version) for r in rows])
        return [_model(r, aliases) for r in rows]

    def set_model_alias(self, name: str, alias: str, version: int | None) -> None:
        a = t.model_aliases.c
        if version is not None:
            self.get_model(name, version)  # NotFound for a version that does not exist
        with self._write("set model alias") as conn:
            conn.execute(t.model_aliases.delete().where(a.name == name, a.alias == alias))
            if version is not None:
                conn.execute(t.model_aliases.insert().values(name=name, alias=alias, version=version))

    def update_model(self, name: str, version: int, tags: Mapping[str, str] | None = None,
                     properties: Mapping[str, str] | None = None, description: str | None = None) -> ModelRecord:
        current = self.get_model(name, version)
        values: dict[str, Any] = {}
        if tags is not None:
            values["tags"] = json.dumps(dict(tags))
        if properties:
            clash = {k for k in properties if k in current.properties and current.properties[k] != properties[k]}
            if clash:
                raise ValidationError(f"model {name}:{version}: properties {', '.join(sorted(clash))} are set already "
                                      "(properties are immutable; use tags for what changes)")
            values["properties"] = json.dumps({**current.properties, **properties})
        if description is not None:
            values["description"] = description
        if values:
            m = t.models.c
            with self._write("update model") as conn:
                conn.execute(update(t.models).where(m.name == name, m.version == version).values(**values))
        return self.get_model(name, version)

    # -- compute targets -------------------------------------------------------------------------
    def create_compute_target(self, name: str, type_: str, config: Mapping[str, Any]) -> ComputeTargetRecord:
        try:
            with self._write("register compute target") as conn:
                conn.execute(t.compute_targets.insert().values(name=name, type=type_, config=json.dumps(dict(config)),
                                                               state="{}", created_at=time.time()))
        except IntegrityError as exc:
            raise ValidationError(f"a compute target named {name!r} already exists in this workspace") from exc
        return self.get_compute_target(name)

    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        c = t.compute_targets.c
        with self._read("read compute target") as conn:
            row = conn.execute(select(t.compute_targets).where(c.name == name)).first()
            names = [] if row is not None else conn.execute(select(c.name).order_by(c.name)).scalars().all()
        if row is None:
            raise NotFound(f"no compute target named {name!r} in this workspace"
                           + (f"; registered: {', '.join(names)}" if names else " (none is registered)"))
        return _compute_target(row)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        with self._read("list compute targets") as conn:
            rows = conn.execute(select(t.compute_targets).order_by(t.compute_targets.c.name)).all()
        return [_compute_target(r) for r in rows]

    def set_compute_target_state(self, name: str, state: Mapping[str, Any]) -> ComputeTargetRecord:
        c = t.compute_targets.c
        with self._write("update compute target") as conn:
            done = conn.execute(update(t.compute_targets).where(c.name == name)
                                .values(state=json.dumps(dict(state)))).rowcount
        if not done:
            self.get_compute_target(name)  # NotFound with the registered names
        return self.get_compute_target(name)

    def delete_compute_target(self, name: str) -> None:
        c = t.compute_targets.c
        with self._write("delete compute target") as conn:
            done = conn.execute(t.compute_targets.delete().where(c.name == name)).rowcount
        if not done:
            self.get_compute_target(name)

    # -- environments ----------------------------------------------------------------------------
    def register_environment(self, name: str, spec: Mapping[str, Any]) -> EnvironmentRecord:
        body = json.dumps(spec, sort_keys=True)
        def insert(conn, latest) -> int:
            if latest is not None and latest.spec == body:
                return latest.version  # registering the same definition again is not a new version
            return _insert_next(conn, t.environments, latest, name=name, spec=body, created_at=time.time())

        return self.get_environment(name, self._register_version("environment", t.environments, name, insert))

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        return _environment(self._get_version("environment", t.environments, name, version))

    def _get_version(self, what: str, table, name: str, version: int | None):
        """The row of ``version`` of ``name`` (the latest when None); NotFound lists the versions there are, or the
        registered names close to ``name``."""
        c = table.c
        query = select(table).where(c.name == name)
        query = query.where(c.version == version) if version is not None else query.order_by(c.version.desc()).limit(1)
        with self._read(f"read {what}") as conn:
            row = conn.execute(query).first()
            if row is not None:
                return row
            versions = conn.execute(select(c.version).where(c.name == name).order_by(c.version)).scalars().all()
            names = [] if versions else conn.execute(
                select(c.name).where(c.name.is_not(None)).distinct().order_by(c.name)).scalars().all()
        if versions:
            raise NotFound(f"{what} {name!r} has no version {version}; versions: {', '.join(map(str, versions))}")
        import difflib

        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        raise NotFound(f"no {what} named {name!r} is registered in this workspace"
                       + (f"; did you mean {', '.join(close)}?" if close else
                          f" (registered: {', '.join(names[:20])})" if names else " (none is registered)"))

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        e = t.environments.c
        if name is not None:
            query = select(t.environments).where(e.name == name).order_by(e.version.desc())
        else:
            newest = select(e.name, func.max(e.version).label("v")).group_by(e.name).subquery()
            query = (select(t.environments).join(newest, and_(e.name == newest.c.name, e.version == newest.c.v))
                     .order_by(e.name))
        with self._read("list environments") as conn:
            return [_environment(r) for r in conn.execute(query).all()]


    # -- datastores ------------------------------------------------------------------------------
    def save_datastore(self, name: str, type_: str, config: Mapping[str, Any], overwrite: bool = False,
                       default: bool = False) -> DatastoreRecord:
        d = t.datastores.c
        values = {"type": type_, "config": json.dumps(dict(config), sort_keys=True)}
        with self._write("register datastore") as conn:
            exists = conn.execute(select(d.name).where(d.name == name)).first() is not None
            if exists and not overwrite:
                raise ValidationError(f"a datastore named {name!r} already exists in this workspace "
                                      "(pass overwrite=True to replace its registration)")
            any_default = conn.execute(select(d.name).where(d.is_default == 1)).first() is not None
            if default:
                conn.execute(update(t.datastores).values(is_default=0))
            if exists:
                conn.execute(update(t.datastores).where(d.name == name).values(
                    **values, **({"is_default": 1} if default else {})))
            else:
                conn.execute(t.datastores.insert().values(name=name, **values, created_at=time.time(),
                                                          is_default=int(default or not any_default)))
        return self.get_datastore(name)

    def get_datastore(self, name: str | None = None) -> DatastoreRecord:
        d = t.datastores.c
        with self._read("read datastore") as conn:
            query = select(t.datastores).where(d.name == name if name is not None else d.is_default == 1)
            row = conn.execute(query).first()
            names = [] if row is not None else conn.execute(select(d.name).order_by(d.name)).scalars().all()
        if row is None:
            import difflib

            what = f"no datastore named {name!r} in this workspace" if name is not None else "this workspace has no default datastore"
            close = difflib.get_close_matches(name, names, n=3) if name is not None else []
            raise NotFound(what + (f"; did you mean {', '.join(close)}?" if close else "")
                           + (f" (registered: {', '.join(names)})" if names and not close else ""))
        return _datastore(row)

    def list_datastores(self) -> list[DatastoreRecord]:
        with self._read("list datastores") as conn:
            return [_datastore(r) for r in conn.execute(select(t.datastores).order_by(t.datastores.c.name))]

    def set_default_datastore(self, name: str) -> None:
        d = t.datastores.c
        self.get_datastore(name)
        with self._write("set default datastore") as conn:
            conn.execute(update(t.datastores).values(is_default=case((d.name == name, 1), else_=0)))

    def delete_datastore(self, name: str) -> None:
        d = t.datastores.c
        with self._write("delete datastore") as conn:
            done = conn.execute(t.datastores.delete().where(d.name == name)).rowcount
        if not done:
            self.get_datastore(name)

    # -- datasets --------------------------------------------------------------------------------
    def save_dataset(self, record: Mapping[str, Any], name: str | None = None, create_new_version: bool = True,
                     dataset_id: str | None = None) -> DatasetRecord:
        import uuid

        s = t.datasets.c
        row = {"type": record["type"], "description": record.get("description"),
               "tags": json.dumps(dict(record.get("tags") or {})),
               "definition": json.dumps(record["definition"], sort_keys=True),
               "files": json.dumps(list(record["files"]), separators=(",", ":")), "created_at": time.time()}
        if name is None:
            dataset_id = dataset_id or str(uuid.uuid4())
            try:
                with self._write("save dataset") as conn:
                    if conn.execute(select(s.id).where(s.id == dataset_id)).first() is None:
                        conn.execute(t.datasets.insert().values(id=dataset_id, name=None, version=None, **row))
            except IntegrityError:  # saved by another submission at the same moment
                pass
            return self.get_dataset_by_id(dataset_id)

        def insert(conn, latest) -> str:
            if latest is not None:
                if latest.definition == row["definition"] and latest.files == row["files"]:
                    return latest.id  # the same data again is not a new version
                if not create_new_version:
                    raise ValidationError(f"a dataset named {name!r} is registered already (version {latest.version}); "
                                          "pass create_new_version=True to register this as its next version")
            new_id = str(uuid.uuid4())
            _insert_next(conn, t.datasets, latest, id=new_id, name=name, **row)
            return new_id

        return self.get_dataset_by_id(self._register_version("dataset", t.datasets, name, insert))

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        return _dataset(self._get_version("dataset", t.datasets, name, version))

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        with self._read("read dataset") as conn:
            row = conn.execute(select(t.datasets).where(t.datasets.c.id == dataset_id)).first()
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id!r} in this workspace")
        return _dataset(row)

    def list_datasets(self, name: str | None = None) -> list[DatasetRecord]:
        s = t.datasets.c
        if name is not None:
            query = select(t.datasets).where(s.name == name).order_by(s.version.desc())
        else:
            newest = select(s.name, func.max(s.version).label("v")).where(s.name.is_not(None)).group_by(s.name).subquery()
            query = (select(t.datasets).join(newest, and_(s.name == newest.c.name, s.version == newest.c.v))
                     .order_by(s.name))
        with self._read("list datasets") as conn:
            return [_dataset(r) for r in conn.execute(query).all()]

    def update_dataset(self, dataset_id: str, tags: Mapping[str, str] | None = None,
                       description: str | None = None) -> DatasetRecord:
        values: dict[str, Any] = {}
        if tags is not None:
            values["tags"] = json.dumps(dict(tags))
        if description is not None:
            values["description"] = description
        self.get_dataset_by_id(dataset_id)
        if values:
            with self._write("update dataset") as conn:
                conn.execute(update(t.datasets).where(t.datasets.c.id == dataset_id).values(**values))
        return self.get_dataset_by_id(dataset_id)

    # -- run inputs ------------------------------------------------------------------------------
    def record_run_inputs(self, run_id: str, inputs: Sequence[RunInputRecord]) -> None:
        if not inputs:
            return
        with self._write("record run inputs") as conn:
            conn.execute(t.run_inputs.insert(), [
                {"run_id": run_id, "name": i.name, "dataset_id": i.dataset_id, "mode": i.mode,
                 "details": json.dumps(i.details)} for i in inputs])

    def list_run_inputs(self, run_id: str) -> list[RunInputRecord]:
        r = t.run_inputs.c
        with self._read("list run inputs") as conn:
            return [_run_input(row) for row in conn.execute(select(t.run_inputs).where(r.run_id == run_id)
                                                            .order_by(r.name))]

    def list_dataset_consumers(self, dataset_ids: Sequence[str]) -> list[RunInputRecord]:
        r = t.run_inputs.c
        if not dataset_ids:
            return []
        with self._read("list dataset consumers") as conn:
            return [_run_input(row) for row in conn.execute(
                select(t.run_inputs).where(r.dataset_id.in_(list(dataset_ids))).order_by(r.run_id, r.name))]


class _Writer:
    """``CoreQueries``' writes on a SQLAlchemy connection."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn, self.dialect = conn, dialect

    def rows(self, sql: str, params: dict) -> list:
        return self.conn.execute(text(sql), params).all()

    def run(self, sql: str, params: dict | list[dict]) -> int:
        return self.conn.execute(text(sql), params).rowcount

    def insert_metrics(self, rows: list[tuple]) -> None:
        # The hot path goes to the driver directly: SQLAlchemy's per-row processing would double the writer's
        # Python time, and that time is taken (under the GIL) from the training loop.
        raw = self.conn.connection.driver_connection
        if self.dialect == "postgresql":
            from psycopg.copy import LibpqWriter

            # LibpqWriter sends from this thread; psycopg's default writer adds a thread that competes for the GIL.
            columns = ", ".join(METRIC_COLUMNS)
            with raw.cursor() as cur, cur.copy(f"COPY metrics ({columns}) FROM STDIN", writer=LibpqWriter(cur)) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            raw.executemany(INSERT_METRICS_QMARK, rows)


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy's "begin" event own transactions instead of pysqlite's implicit ones.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; ranks of one run log at once
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints, safe in WAL mode
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front: a deferred one that upgrades later can fail with
    # "database is locked" without waiting when another process holds it.
    immediate = conn.get_execution_options().get("runyard_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# -- row → entity ------------------------------------------------------------------------------
def _model(row, aliases: dict[tuple[str, int], list[str]]) -> ModelRecord:
    return ModelRecord(row.name, row.version, row.content_id, row.path, row.framework, row.framework_version,
                       row.description, json.loads(row.tags), json.loads(row.properties), row.run_id,
                       json.loads(row.details), row.created_at, tuple(aliases.get((row.name, row.version), ())))


def _compute_target(row) -> ComputeTargetRecord:
    return ComputeTargetRecord(row.name, row.type, json.loads(row.config), json.loads(row.state), row.created_at)


def _insert_next(conn: Connection, table, latest, **values: Any) -> int:
    """Insert the version after ``latest`` (1 when there is none); return its number."""
    version = (latest.version if latest is not None else 0) + 1
    conn.execute(table.insert().values(version=version, **values))
    return version


def _datastore(row) -> DatastoreRecord:
    return DatastoreRecord(row.name, row.type, json.loads(row.config), bool(row.is_default), row.created_at)


def _dataset(row) -> DatasetRecord:
    return DatasetRecord(row.id, row.name, row.version, row.type, row.description, json.loads(row.tags),
                         json.loads(row.definition), json.loads(row.files), row.created_at)


def _run_input(row) -> RunInputRecord:
    return RunInputRecord(row.run_id, row.name, row.dataset_id, row.mode, json.loads(row.details))


def _environment(row) -> EnvironmentRecord:
    return EnvironmentRecord(row.name, row.version, json.loads(row.spec), row.created_at)


__all__ = ["SqlMetadataStore", "redact"]
