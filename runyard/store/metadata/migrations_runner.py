"""Bring a database to the newest schema, once, even when several processes open it at the same moment."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import Engine, text

from runyard.errors import StoreError

_HERE = Path(__file__).parent
# Any constant: the PostgreSQL advisory lock that serialises runyard migrations.
_PG_LOCK_KEY = 0x52554E59


@lru_cache(maxsize=1)
def _config() -> Config:
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine, lock_path: str | None = None) -> None:
    """Run pending Alembic migrations; a no-op (one query) when the schema is current."""
    head = head_revision()
    if current_revision(engine) == head:
        return
    if lock_path:
        with FileLock(lock_path, timeout=120):
            _upgrade(engine, head)
    else:
        _upgrade(engine, head)


def _upgrade(engine: Engine, head: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return  # another process migrated while we waited for the lock
        known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
        if current is not None and current not in known:
            raise StoreError(
                f"the database schema is at revision {current}, which this runyard does not know; "
                "it was written by a newer runyard — upgrade runyard (pip install -U runyard)"
            )
        cfg = _config()
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, "head")
        finally:
            cfg.attributes.pop("connection", None)
