"""The metadata store contract, run on SQLite and (with RUNYARD_TEST_DB_URI) PostgreSQL."""
import math
import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from runyard import RunStatus
from runyard.errors import InvalidStatusTransition, NotFound, StoreError, ValidationError
from runyard.store.metadata import ArtifactInfo, MetricRecord
from runyard.store.metadata.sqlite_store import sqlite_path
from runyard.store.metadata.schema import metadata as orm_metadata


def test_migrations_produce_the_orm_schema(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), orm_metadata)
    assert diff == []


def test_reopening_a_migrated_database_keeps_its_data(store):
    from runyard.store.metadata.sql_store import SqlMetadataStore

    again = SqlMetadataStore(store.url)
    assert again.get_or_create_experiment("e").id == store.get_or_create_experiment("e").id
    again.close()


def test_experiment_get_or_create_is_idempotent(store):
    a = store.get_or_create_experiment("exp")
    b = store.get_or_create_experiment("exp")
    assert a.id == b.id and [e.name for e in store.list_experiments()] == ["exp"]
    assert store.get_experiment(a.id).name == "exp"
    with pytest.raises(NotFound, match="'nope'"):
        store.get_experiment("nope")


def test_runs_create_list_page_and_children(store):
    exp = store.get_or_create_experiment("exp")
    ids = [store.create_run(exp.id, run_id=f"r{i}", status=RunStatus.RUNNING).run_id for i in range(5)]
    store.create_run(exp.id, run_id="c1", parent_run_id="r0", tags={"k": "v"}, properties={"p": "1"})
    listed = [r.run_id for r in store.list_runs(experiment_id=exp.id, top_level_only=True, limit=3)]
    assert listed == ids[::-1][:3]  # newest first
    assert [r.run_id for r in store.list_runs(experiment_id=exp.id, top_level_only=True, limit=3, offset=3)] == ids[::-1][3:]
    assert [r.run_id for r in store.list_runs(parent_run_id="r0")] == ["c1"]
    assert store.count_runs(experiment_id=exp.id) == 6 and store.count_runs(experiment_id=exp.id, top_level_only=True) == 5
    assert [r.run_id for r in store.iter_runs(page=2, experiment_id=exp.id, top_level_only=True)] == ids[::-1]
    got = store.get_run("c1")
    assert got.parent_run_id == "r0" and got.tags == {"k": "v"} and got.properties == {"p": "1"}
    assert got.status is RunStatus.NOT_STARTED and got.start_time is None
    with pytest.raises(NotFound, match="'missing'"):
        store.get_run("missing")
    with pytest.raises(NotFound, match="'ghost'"):
        store.create_run(exp.id, parent_run_id="ghost")
    with pytest.raises(ValidationError, match="already exists"):
        store.create_run(exp.id, run_id="r1")


def test_status_transitions_and_terminal_statuses_never_change(store):
    exp = store.get_or_create_experiment("exp")
    run = store.create_run(exp.id, run_id="r", status=RunStatus.QUEUED)
    assert run.start_time is None
    assert store.set_status("r", RunStatus.RUNNING).start_time is not None
    done = store.set_status("r", RunStatus.FAILED, error={"message": "boom"}, exit_code=3)
    assert done.status is RunStatus.FAILED and done.error == {"message": "boom"} and done.exit_code == 3
    assert done.end_time >= done.start_time
    assert store.set_status("r", RunStatus.FAILED).status is RunStatus.FAILED  # same terminal status: no-op
    with pytest.raises(InvalidStatusTransition, match="already Failed"):
        store.set_status("r", RunStatus.COMPLETED)
    assert store.get_run("r").status is RunStatus.FAILED
    with pytest.raises(NotFound):
        store.set_status("nope", RunStatus.RUNNING)


def test_metrics_round_trip_numbers_strings_nan_inf_and_odd_names(store):
    exp = store.get_or_create_experiment("exp")
    store.create_run(exp.id, run_id="r")
    t = time.time()
    values = [1, 2.5, float("nan"), float("inf"), float("-inf"), True, "text", {"col": [1, 2]}, 2**40]
    store.log_batch(metrics=[MetricRecord("r", "val loss@5", v, i, t + i) for i, v in enumerate(values)])
    got = [m.value for m in store.get_metric_history(["r"])]
    assert got[0] == 1 and type(got[0]) is int and got[1] == 2.5 and math.isnan(got[2])
    assert got[3:] == [float("inf"), float("-inf"), True, "text", {"col": [1, 2]}, 2**40]
    (latest,) = store.get_latest_metrics(["r"])
    assert latest.name == "val loss@5" and latest.value_count == len(values) and latest.value == 2**40 and latest.step == 8


def test_latest_metric_follows_time_across_batches(store):
    exp = store.get_or_create_experiment("exp")
    store.create_run(exp.id, run_id="r")
    store.log_batch(metrics=[MetricRecord("r", "m", 2.0, 1, 200.0)])
    store.log_batch(metrics=[MetricRecord("r", "m", 1.0, 0, 100.0)])  # a late batch with an older value
    (latest,) = store.get_latest_metrics(["r"])
    assert (latest.value, latest.value_count) == (2.0, 2)
    assert [m.value for m in store.get_metric_history(["r"], ["m"])] == [1.0, 2.0]  # logging-time order


def test_params_and_properties_are_write_once_tags_are_not(store):
    exp = store.get_or_create_experiment("exp")
    store.create_run(exp.id, run_id="r")
    store.log_batch(params=[("r", "lr", "0.1")], tags=[("r", "t", "a")])
    store.log_batch(params=[("r", "lr", "0.1")], tags=[("r", "t", "b")])
    with pytest.raises(ValidationError, match="param 'lr' .* cannot be changed"):
        store.log_param("r", "lr", "0.2")
    store.add_properties("r", {"git": "abc"})
    store.add_properties("r", {"git": "abc", "x": "1"})
    with pytest.raises(ValidationError, match="property 'git'"):
        store.add_properties("r", {"git": "def"})
    run = store.get_run("r")
    assert run.params == {"lr": "0.1"} and run.tags == {"t": "b"} and run.properties == {"git": "abc", "x": "1"}
    store.delete_tag("r", "t")
    assert store.get_run("r").tags == {}
    with pytest.raises(NotFound):
        store.add_properties("ghost", {"a": "b"})


def test_artifact_index_and_prefix_matching_is_literal(store):
    exp = store.get_or_create_experiment("exp")
    store.create_run(exp.id, run_id="r")
    names = ["outputs/m.pkl", "outputs/sub/x.txt", "outputsX/y", "out_1/a", "out%1/b", "logs/l.txt"]
    store.record_artifacts("r", [ArtifactInfo(n, 10, time.time()) for n in names])
    store.record_artifacts("r", [ArtifactInfo("outputs/m.pkl", 20, time.time())])  # re-upload updates
    assert [a.path for a in store.list_artifacts("r", "outputs")] == ["outputs/m.pkl", "outputs/sub/x.txt"]
    assert [a.path for a in store.list_artifacts("r", "out_1")] == ["out_1/a"]
    assert [a.path for a in store.list_artifacts("r", "out%1/")] == ["out%1/b"]
    assert {a.path: a.size for a in store.list_artifacts("r")}["outputs/m.pkl"] == 20


def test_unreachable_database_names_the_url():
    from runyard.store.metadata.sql_store import SqlMetadataStore

    with pytest.raises(StoreError, match=r"postgresql\+psycopg://runyard:\*\*\*@127.0.0.1:1/nodb") as info:
        SqlMetadataStore("postgresql+psycopg://runyard:secret@127.0.0.1:1/nodb")
    assert "secret" not in str(info.value)


def test_unsupported_url_is_refused():
    from runyard.store.metadata.sql_store import SqlMetadataStore

    with pytest.raises(StoreError, match="unsupported metadata store"):
        SqlMetadataStore("mysql://u@h/db")


def test_migrations_downgrade_and_upgrade_again(store):
    from alembic import command
    from sqlalchemy import inspect

    from runyard.store.metadata.migrations_runner import _config, current_revision, head_revision, upgrade_to_head

    cfg = _config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    cfg.attributes.pop("connection")
    assert current_revision(store.engine) is None
    assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
    upgrade_to_head(store.engine)
    assert current_revision(store.engine) == head_revision()
    assert store.get_or_create_experiment("after").name == "after"


def test_a_database_from_a_newer_runyard_is_refused(store):
    from sqlalchemy import text

    from runyard.store.metadata.migrations_runner import upgrade_to_head

    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    with pytest.raises(StoreError, match="newer runyard"):
        upgrade_to_head(store.engine)


def test_head_constant_matches_the_migration_scripts():
    from runyard.store.metadata.migrations_runner import HEAD, head_revision

    assert HEAD == head_revision()  # upgrade_to_head trusts HEAD to skip importing Alembic


def test_a_0001_database_is_upgraded_keeping_its_runs(store):
    from alembic import command

    from runyard.store.metadata.migrations_runner import _config, current_revision, upgrade_to_head

    exp = store.get_or_create_experiment("old")
    old = store.create_run(exp.id)
    cfg = _config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    cfg.attributes.pop("connection")
    assert current_revision(store.engine) == "0001"
    upgrade_to_head(store.engine)
    assert store.get_run(old.run_id).compute_target is None
    new = store.create_run(exp.id, compute_target="local", definition={"script": "t.py"}, heartbeat=True)
    info = store.get_run(new.run_id)
    assert info.compute_target == "local" and info.definition == {"script": "t.py"} and info.heartbeat_at


def test_progress_never_undoes_a_cancel_request(store):
    from runyard.status import RunStatus

    run = store.create_run(store.get_or_create_experiment("c").id, status=RunStatus.QUEUED)
    store.set_status(run.run_id, RunStatus.CANCEL_REQUESTED)
    assert store.set_status(run.run_id, RunStatus.RUNNING).status == RunStatus.CANCEL_REQUESTED
    assert store.set_status(run.run_id, RunStatus.FINALIZING).status == RunStatus.FINALIZING
    assert store.set_status(run.run_id, RunStatus.CANCELED).status == RunStatus.CANCELED


def test_datastores_datasets_and_run_inputs(store):
    from runyard.store.metadata.entities import RunInputRecord

    first = store.save_datastore("workspaceblobstore", "local", {"path": "/x"})
    assert first.is_default  # the first one is the default until another is chosen
    store.save_datastore("lake", "s3", {"bucket": "b"})
    with pytest.raises(ValidationError, match="already exists"):
        store.save_datastore("lake", "s3", {"bucket": "c"})
    assert store.save_datastore("lake", "s3", {"bucket": "c"}, overwrite=True).config == {"bucket": "c"}
    store.set_default_datastore("lake")
    assert store.get_datastore(None).name == "lake" and not store.get_datastore("workspaceblobstore").is_default
    with pytest.raises(NotFound, match="did you mean lake"):
        store.get_datastore("laek")
    store.delete_datastore("lake")
    assert [d.name for d in store.list_datastores()] == ["workspaceblobstore"]

    record = {"type": "file", "definition": {"sources": []}, "files": [{"path": "a", "size": 1, "sha256": "0" * 64}]}
    v1 = store.save_dataset(record, name="d")
    assert (v1.name, v1.version) == ("d", 1)
    assert store.save_dataset(record, name="d").id == v1.id  # the same content is not a new version
    with pytest.raises(ValidationError, match="create_new_version"):
        store.save_dataset({**record, "files": []}, name="d", create_new_version=False)
    v2 = store.save_dataset({**record, "files": []}, name="d")
    assert v2.version == 2 and store.get_dataset("d").id == v2.id and store.get_dataset("d", 1).id == v1.id
    anon = store.save_dataset(record, dataset_id="anon-1")
    assert store.save_dataset(record, dataset_id="anon-1").id == "anon-1" and anon.name is None
    assert [d.version for d in store.list_datasets("d")] == [2, 1]
    assert [(d.name, d.version) for d in store.list_datasets()] == [("d", 2)]  # unnamed ones are not listed
    assert store.update_dataset(v1.id, tags={"k": "v"}, description="one").tags == {"k": "v"}
    with pytest.raises(NotFound, match="versions: 1, 2"):
        store.get_dataset("d", 9)

    exp = store.get_or_create_experiment("e")
    store.create_run(exp.id, run_id="r1", status=RunStatus.QUEUED)
    store.record_run_inputs("r1", [RunInputRecord("r1", "train", v1.id, "mount", {}),
                                   RunInputRecord("r1", "raw", None, "download", {"datastore": "x", "path": "p"})])
    assert [(i.name, i.mode) for i in store.list_run_inputs("r1")] == [("raw", "download"), ("train", "mount")]
    assert [i.run_id for i in store.list_dataset_consumers([v1.id, v2.id])] == ["r1"]


def test_run_listing_sorts_searches_and_reduces_long_series(store):
    exp = store.get_or_create_experiment("e")
    now = time.time()
    for i in range(6):
        store.create_run(exp.id, run_id=f"run{i}", status=RunStatus.RUNNING, display_name=f"trial {i}")
        store.log_batch(metrics=[MetricRecord(f"run{i}", "acc", i / 10, 0, now)] if i != 3 else [],
                        params=[(f"run{i}", "lr", str(i % 3))])
    assert [r.run_id for r in store.list_runs(sort="-metric:acc", limit=3)] == ["run5", "run4", "run2"]
    assert store.list_runs(sort="metric:acc")[-1].run_id == "run3"  # no value: last, either way
    assert [r.params["lr"] for r in store.list_runs(sort="param:lr")][:2] == ["0", "0"]
    assert [r.run_id for r in store.list_runs(search="TRIAL 4")] == ["run4"]
    assert store.count_runs(search="trial", statuses=[RunStatus.RUNNING]) == 6
    with pytest.raises(ValidationError, match="cannot sort runs by"):
        store.list_runs(sort="size")
    store.log_batch(metrics=[MetricRecord("run0", "loss", 100.0 if s == 7000 else 1.0 / (s + 1), s, now)
                             for s in range(10_000)])
    series = store.get_metric_series("run0", "loss", points=200)
    steps, values, count = series.steps, series.values, series.count
    assert count == 10_000 and len(values) <= 200 and max(values) == 100.0 and steps == sorted(steps)
    assert series.reduced and len(series.times) == len(values) and set(series.times) == {now}
    short = store.get_metric_series("run0", "acc", points=200)
    assert short[:4] == ([0], [0.0], [now], 1) and not short.reduced
    # What a live chart appends: the values logged after the series' last position, in logging order, unreduced.
    store.log_batch(metrics=[MetricRecord("run0", "loss", float(s), s, now + 1) for s in (10_000, 10_001)]
                    + [MetricRecord("run1", "loss", 9.0, 0, now)])
    tail = store.get_metric_series("run0", "loss", points=200, after=series.last_id)
    assert tail[:4] == ([10_000, 10_001], [10_000.0, 10_001.0], [now + 1, now + 1], 2) and tail.last_id > series.last_id
    assert store.get_metric_series("run0", "loss", after=tail.last_id)[:4] == ([], [], [], 0)
    assert store.get_metric_series("run0", "loss", points=1, after=series.last_id).steps == [10_000]
    assert store.get_metric_series("run0", "loss", points=200).count == 10_002


def _populated_sqlite(tmp_path):
    """A SQLite database written through SQLAlchemy: runs with children, tags, params, metrics and statuses."""
    from runyard.store.metadata.sql_store import SqlMetadataStore

    url = f"sqlite:///{tmp_path / 'reads' / 'meta.db'}"
    full = SqlMetadataStore(url)
    now = time.time()
    for name in ("zeta", "alpha"):
        exp = full.get_or_create_experiment(name)
        for i in range(7):
            run_id = f"{name}_{i}"
            full.create_run(exp.id, run_id=run_id, display_name=f"Trial_{i}%" if i % 2 else None,
                            status=RunStatus.RUNNING if i % 3 else RunStatus.QUEUED, tags={"t": str(i)},
                            properties={"p": "x"}, definition={"script": "s.py", "arguments": []} if i == 1 else None)
            full.log_batch(metrics=[MetricRecord(run_id, "acc", i / 10 + s, s, now + s) for s in range(3)] +
                                   ([MetricRecord(run_id, "note", f"text {i}", 0, now)] if i == 2 else []),
                           params=[(run_id, "lr", str(i % 3))] if i != 4 else [])
            full.record_artifacts(run_id, [ArtifactInfo(path, 10, now) for path in
                                           ("logs/a.txt", "logs/b/c.txt", "logs_x/d", "outputs/m%_1.pkl", "logs")])
            if i == 5:
                full.set_status(run_id, RunStatus.COMPLETED)
            if i == 6:
                full.set_status(run_id, RunStatus.FAILED, error={"message": "boom"}, exit_code=3)
        full.create_run(exp.id, run_id=f"{name}_child", parent_run_id=f"{name}_1", run_type="hyperdrive")
    full.close()
    return url


def test_sqlite3_reads_answer_as_the_sqlalchemy_store(tmp_path):
    """Read commands and training scripts read a SQLite workspace through sqlite3 (no SQLAlchemy import): every read
    must answer exactly what the SQLAlchemy store answers, and open nothing heavier."""
    from runyard.store.metadata.sql_store import SqlMetadataStore
    from runyard.store.metadata.sqlite_store import SqliteStore, sqlite_path

    url = _populated_sqlite(tmp_path)
    full, light = SqlMetadataStore(url), SqliteStore(url, sqlite_path(url))
    calls = [("list_experiments", {}), ("get_experiment", {"name_or_id": "alpha"}), ("get_experiment", {"name_or_id": 1}),
             ("get_run", {"run_id": "alpha_1"}), ("get_run", {"run_id": "zeta_6"}),
             ("get_latest_metrics", {"run_ids": ["alpha_2", "zeta_0", "nope"]}),
             ("get_metric_history", {"run_ids": ["alpha_2", "zeta_3"]}),
             ("get_metric_history", {"run_ids": ["alpha_2"], "names": ["note"]}),
             ("list_artifacts", {"run_id": "alpha_2"}), ("list_artifacts", {"run_id": "alpha_2", "prefix": "logs/"}),
             ("list_artifacts", {"run_id": "alpha_2", "prefix": "outputs/m%_1.pkl"})]
    for sort in (None, "created", "-name", "name", "status", "-duration", "metric:acc", "-metric:acc", "param:lr",
                 "-param:lr"):
        calls.append(("list_runs", {"sort": sort, "limit": 50}))
    for filters in ({"experiment_id": 2}, {"top_level_only": True, "limit": 4, "offset": 3},
                    {"parent_run_id": "zeta_1"}, {"parent_run_id": ["zeta_1", "alpha_1"]}, {"parent_run_id": []},
                    {"statuses": [RunStatus.RUNNING, "Completed"]}, {"search": "trial_3%"}, {"search": "_"},
                    {"search": "ZETA", "top_level_only": True, "statuses": ["Queued"]}):
        calls += [("list_runs", filters), ("count_runs", {k: v for k, v in filters.items() if k not in ("limit", "offset")})]
    for name, kwargs in calls:
        assert getattr(light, name)(**kwargs) == getattr(full, name)(**kwargs), (name, kwargs)
    assert [a.path for a in light.list_artifacts("alpha_2", "logs")] == ["logs", "logs/a.txt", "logs/b/c.txt"]
    for name, arg in (("get_run", "missing"), ("get_experiment", "missing")):
        with pytest.raises(NotFound, match="'missing'"):
            getattr(light, name)(arg)
    with pytest.raises(ValidationError, match="cannot sort runs by"):
        light.list_runs(sort="size")
    assert light._full is None  # nothing above needed SQLAlchemy's store
    assert light.list_compute_targets() == []  # a call sqlite3 does not serve opens it; it serves from then on
    light.set_status("alpha_0", RunStatus.COMPLETED)
    assert light._full is not None and light.get_run("alpha_0").status is RunStatus.COMPLETED
    full.close()
    light.close()


def test_sqlite3_log_batch_stores_what_the_sqlalchemy_store_would(tmp_path):
    """A training script logs through sqlite3: every rule of log_batch holds (latest by time and count, params
    written once, tags replaced, a journal's values stored once, unknown runs refused), read back by SQLAlchemy."""
    from runyard.store.metadata.sql_store import SqlMetadataStore
    from runyard.store.metadata.sqlite_store import SqliteStore, sqlite_path

    url = _populated_sqlite(tmp_path)
    light, full = SqliteStore(url, sqlite_path(url)), SqlMetadataStore(url)
    t0 = time.time()
    batch = [MetricRecord("alpha_3", "loss", 0.5, 0, t0 + 10), MetricRecord("alpha_3", "loss", 0.9, 1, t0 + 5),
             MetricRecord("alpha_3", "tag", "text", 0, t0), MetricRecord("alpha_3", "cfg", {"a": [1, 2]}, 0, t0),
             MetricRecord("alpha_3", "n", 7, 0, t0), MetricRecord("alpha_3", "nan", math.nan, 0, t0),
             MetricRecord("alpha_3", "flag", True, 0, t0)]
    light.log_batch(metrics=batch, params=[("alpha_3", "lr", "0"), ("alpha_3", "new", "x")],
                    tags=[("alpha_3", "t", "changed"), ("alpha_3", "u", "1")], journal=("host-1-abc", 0))
    light.log_batch(metrics=batch[:2], journal=("host-1-abc", 0))  # a replay of the same journal values: no-op
    # values 6 and 7 of the journal: 6 is stored already, only 7 is new
    light.log_batch(metrics=[batch[6], MetricRecord("alpha_3", "loss", 0.1, 2, t0 + 20)], journal=("host-1-abc", 6))
    light.log_metric(MetricRecord("alpha_3", "loss", 0.7, 3, t0 + 1))  # older than the newest: counted, not latest
    light.add_properties("alpha_3", {"p": "x", "q": "y"})
    with pytest.raises(ValidationError, match="param 'lr' of run alpha_3 is already '0'"):
        light.log_batch(params=[("alpha_3", "lr", "1")])
    with pytest.raises(ValidationError, match="property 'q'"):
        light.add_properties("alpha_3", {"q": "z"})
    with pytest.raises(NotFound, match="does not exist"):
        light.log_batch(tags=[("ghost", "k", "v")])  # metrics name any run (no key); tags need the run
    with pytest.raises(NotFound, match="'ghost'"):
        light.add_properties("ghost", {"p": "1"})
    assert light._full is None
    latest = {m.name: m for m in full.get_latest_metrics(["alpha_3"]) if m.name != "acc"}
    assert (latest["loss"].value, latest["loss"].step, latest["loss"].value_count) == (0.1, 2, 4)
    assert latest["tag"].value == "text" and latest["cfg"].value == {"a": [1, 2]} and latest["n"].value == 7
    assert math.isnan(latest["nan"].value) and latest["flag"].value is True
    assert [m.value for m in full.get_metric_history(["alpha_3"], ["loss"])] == [0.7, 0.9, 0.5, 0.1]  # by time
    run = full.get_run("alpha_3")
    assert run.params == {"lr": "0", "new": "x"} and run.tags == {"t": "changed", "u": "1"}
    assert run.properties == {"p": "x", "q": "y"}
    for store in (light, full):
        store.close()


def test_sqlite3_store_leaves_other_schemas_to_the_full_store_and_reaps_stale_runs(tmp_path):
    from sqlalchemy import text

    from runyard.store.metadata.sql_store import SqlMetadataStore
    from runyard.store.metadata.sqlite_store import SqliteStore, sqlite_path

    # A database at an older revision: the first read opens the full store, which migrates it.
    url = _populated_sqlite(tmp_path)
    full = SqlMetadataStore(url)
    with full.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    light = SqliteStore(url, sqlite_path(url))
    with pytest.raises(StoreError, match="revision older"):  # the full store names what it cannot migrate
        light.list_experiments()
    with full.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    # A run whose heartbeat stopped: a sqlite3 read fails it, as any read does.
    full.heartbeat(["alpha_3"])
    with full.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET heartbeat_at = heartbeat_at - 3600 WHERE run_id = 'alpha_3'"))
    light = SqliteStore(url, sqlite_path(url))
    failed = light.get_run("alpha_3")
    assert failed.status is RunStatus.FAILED and failed.error["code"] == "HeartbeatLost" and light._full is None
    # No database yet: the full store creates it.
    fresh = SqliteStore(f"sqlite:///{tmp_path / 'new.db'}", str(tmp_path / "new.db"))
    assert fresh.list_experiments() == [] and fresh._full is not None
    for store in (full, light, fresh):
        store.close()


def test_a_read_command_does_not_import_sqlalchemy(tmp_path):
    url = _populated_sqlite(tmp_path)
    code = ("import sys; from runyard.store.metadata import open_metadata_store as o; s = o(sys.argv[1]); "
            "assert len(s.list_runs(limit=5)) == 5 and s.get_latest_metrics(['alpha_1']); "
            "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_only_plain_sqlite_file_urls_go_through_sqlite3():
    assert sqlite_path("sqlite:////abs/x.db") == "/abs/x.db" and sqlite_path("sqlite:///rel.db") == "rel.db"
    assert sqlite_path("sqlite://") is None and sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:///x.db?mode=ro") is None and sqlite_path("postgresql+psycopg://h/db") is None
