"""Shared fixtures. The store-backed suites run on SQLite and, when RUNYARD_TEST_DB_URI is set, on PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

PG_URI = os.environ.get("RUNYARD_TEST_DB_URI")
BACKENDS = ["sqlite"] + (["postgres"] if PG_URI else [])


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test touches ~/.runyard or inherits a run context from the environment."""
    monkeypatch.setenv("RUNYARD_HOME", str(tmp_path / "home-ws"))
    for var in ("RUNYARD_RUN_ID", "RUNYARD_TRACKING_URI", "RUNYARD_ARTIFACT_URI", "RUNYARD_WORKSPACE",
                "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    import runyard.run

    runyard.run._context = None
    yield
    _kill_leftovers(tmp_path)


def _kill_leftovers(tmp_path: Path) -> None:
    """A test that fails half-way may leave a submitted run going: stop every process working under tmp_path."""
    import psutil

    me = os.getpid()
    leftovers = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if proc.info["pid"] != me and cwd.startswith(str(tmp_path)):
            leftovers.append(proc)
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass


def pg_schema_uri(schema: str) -> str:
    """A URL whose connections use their own PostgreSQL schema: isolated tests on one database."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URI)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in PG_URI else "?"
    return f"{PG_URI}{sep}options=-csearch_path%3D{schema}"


def drop_pg_schema(schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URI)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ws' / 'runyard.db'}"
        return
    pytest.importorskip("psycopg")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield pg_schema_uri(schema)
    drop_pg_schema(schema)


@pytest.fixture
def workspace(db_url, tmp_path):
    from runyard import Workspace
    from runyard.context.logger import forget_logger
    from runyard.store.metadata import close_metadata_store

    ws = Workspace(tmp_path / "ws", tracking_uri=db_url)
    yield ws
    forget_logger(ws.metadata)
    close_metadata_store(db_url)


@pytest.fixture
def store(workspace):
    return workspace.metadata


def run_python(code: str, env: dict | None = None, cwd: str | Path | None = None, timeout: float = 120, check: bool = True):
    """Run a Python snippet in a fresh interpreter (a real separate process), returning the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def local_packages(monkeypatch):
    """Environment builds from this machine's own package sources only (no network, per the network rule): pip's
    file:// indexes and find-links folders become the only sources, and uv runs offline. Skips where a machine has
    no local package index."""
    from runyard.submission.package_index import pip_settings

    settings = pip_settings()
    local = [u for u in (settings.index_url, *settings.extra_index_urls) if u and u.startswith("file://")]
    if not local:
        pytest.skip("this machine has no local package index (pip's file:// index-url/extra-index-url)")
    monkeypatch.setenv("PIP_INDEX_URL", local[0])
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", " ".join(local[1:]))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    return settings


def env_with(name: str = "e", *pip: str, **python):
    """A built-environment spec: ``env_with("e", "tabulate", inherit_base_packages=True)``."""
    from runyard import Environment

    env = Environment(name)
    for package in pip:
        env.python.conda_dependencies.add_pip_package(package)
    for attribute, value in python.items():
        setattr(env.python, attribute, value)
    return env
