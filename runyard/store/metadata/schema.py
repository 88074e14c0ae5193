"""Table definitions (SQLAlchemy Core). Alembic migrations in ``migrations/`` must produce exactly this schema.

Timestamps are Unix seconds (double precision): portable across SQLite and PostgreSQL, cheap to index and sort.
Metric values: ``value`` (double) for numbers, ``value_str`` for strings and JSON (rows, tables);
``vtype`` says which (``f`` float, ``i`` int, ``b`` bool, ``s`` str, ``j`` JSON). A float row with a NULL
``value`` is NaN (SQLite cannot store NaN; PostgreSQL could, one rule serves both).
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias); PostgreSQL wants BIGINT for metrics.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
    Column("tags", Text, nullable=True),  # JSON object
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("parent_run_id", String(255), ForeignKey("runs.run_id"), nullable=True),
    Column("display_name", String(255), nullable=True),
    Column("description", Text, nullable=True),
    Column("run_type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("start_time", Double, nullable=True),
    Column("end_time", Double, nullable=True),
    Column("heartbeat_at", Double, nullable=True),
    Column("error", Text, nullable=True),  # JSON object
    Column("exit_code", Integer, nullable=True),
    Column("compute_target", String(255), nullable=True),  # submitted runs: where they run
    Column("definition", Text, nullable=True),  # submitted runs: the job spec as JSON (get_details' runDefinition)
    Index(None, "experiment_id", "created_at"),
    Index(None, "created_at"),  # runs list across experiments, newest first
    Index(None, "parent_run_id"),
    Index(None, "status"),
)


def _kv_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("run_id", String(255), ForeignKey("runs.run_id"), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("value", Text, nullable=False),
    )


run_tags = _kv_table("run_tags")
run_properties = _kv_table("run_properties")
run_params = _kv_table("run_params")

# No foreign key on metrics: it is the hot insert path, and run ids are checked when a Run handle is made.
metrics = Table(
    "metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Double, nullable=True),
    Column("value_str", Text, nullable=True),
    Column("vtype", String(1), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("timestamp", Double, nullable=False),
    Index(None, "run_id", "name"),
)

metric_latest = Table(
    "metric_latest",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Double, nullable=True),
    Column("value_str", Text, nullable=True),
    Column("vtype", String(1), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("count", BigInteger, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(255), ForeignKey("runs.run_id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),  # Environment.to_spec() as JSON
    Column("created_at", Double, nullable=False),
)

compute_targets = Table(
    "compute_targets",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("type", String(64), nullable=False),  # "ray", …: which ComputeTarget class serves it
    Column("config", Text, nullable=False),  # the provisioning/attach configuration as JSON
    Column("state", Text, nullable=False),  # what the target recorded about itself (e.g. pids of nodes it started)
    Column("created_at", Double, nullable=False),
)

models = Table(
    "models",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_id", String(64), nullable=False),  # the snapshot manifest of the model's files (content-addressed)
    Column("path", String(1024), nullable=False),  # the file or folder name the files were registered under
    Column("framework", String(64), nullable=True),
    Column("framework_version", String(64), nullable=True),
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),  # JSON
    Column("properties", Text, nullable=False),  # JSON
    Column("run_id", String(255), nullable=True),  # lineage: the run that produced it
    Column("details", Text, nullable=False),  # JSON: resource configuration, datasets, file list with sizes
    Column("created_at", Double, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("alias", String(255), primary_key=True),
    Column("version", Integer, nullable=False),
)

datastores = Table(
    "datastores",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("type", String(32), nullable=False),  # local, s3, azure_blob, gcs
    Column("config", Text, nullable=False),  # JSON; a secret given at registration is stored encrypted, never plain
    Column("is_default", Integer, nullable=False),  # 1 for the workspace's default datastore
    Column("created_at", Double, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=True),  # NULL: saved unregistered (a run consumed it)
    Column("version", Integer, nullable=True),
    Column("type", String(16), nullable=False),  # file, tabular
    Column("description", Text, nullable=True),
    Column("tags", Text, nullable=False),  # JSON
    Column("definition", Text, nullable=False),  # JSON: sources and (tabular) parsing options
    Column("files", Text, nullable=False),  # JSON: the resolved files with sizes and hashes, at registration
    Column("created_at", Double, nullable=False),
    UniqueConstraint("name", "version"),
)

run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),  # the input's name (as_named_input / data reference name)
    Column("dataset_id", String(64), nullable=True),  # NULL for a datastore path consumed without a dataset
    Column("mode", String(16), nullable=False),  # mount, download, direct
    Column("details", Text, nullable=False),  # JSON: datastore and path for a data reference
    Index(None, "dataset_id"),
)

# How far each metric journal (runyard.store.journal: one per logging process) is stored: written in the same
# transaction as the values, so a journal replayed after its process died stores each value exactly once.
journal_marks = Table(
    "journal_marks",
    metadata,
    Column("journal", String(255), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # values 0 … seq-1 of the journal are stored
    Column("updated_at", Double, nullable=False),
)
