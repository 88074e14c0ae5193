"""Bring a database to the newest schema, once, even when several processes open it at the same moment."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock
from sqlalchemy import Engine, exc, text

from runyard.errors import StoreError
from runyard.store.metadata.queries import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).parent
# Any constant: the PostgreSQL advisory lock that serialises runyard migrations.
_PG_LOCK_KEY = 0x52554E59


@lru_cache(maxsize=1)
def _config() -> "Config":
    from alembic.config import Config

    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The head according to Alembic's script directory (imports Alembic; tests compare it with HEAD)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision with one plain query (None for an empty database)."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.ProgrammingError:  # PostgreSQL: no such table
        return None
    except exc.OperationalError as error:  # SQLite: no such table; anything else is a real failure
        if "no such table" in str(error):
            return None
        raise


def upgrade_to_head(engine: Engine, lock_path: str | None = None) -> None:
    """Run pending Alembic migrations; a no-op (one query, no Alembic import) when the schema is current."""
    head = HEAD
    if current_revision(engine) == head:
        return
    if lock_path:
        with FileLock(lock_path, timeout=120):
            _upgrade(engine, head)
    else:
        _upgrade(engine, head)


def _upgrade(engine: Engine, head: str) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

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
