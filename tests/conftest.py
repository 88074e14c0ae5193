"""Shared fixtures. The store-backed suites run on SQLite and, when RUNYARD_TEST_DB_URI is set, on PostgreSQL."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_URI = os.environ.get("RUNYARD_TEST_DB_URI")
LOCAL_PACKAGES = Path(__file__).resolve().parents[1] / ".cache" / "packages"  # filled by scripts/setup.sh
BACKENDS = ["sqlite"] + (["postgres"] if PG_URI else [])


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test touches ~/.runyard or inherits a run context from the environment."""
    monkeypatch.setenv("RUNYARD_HOME", str(tmp_path / "home-ws"))
    for var in ("RUNYARD_RUN_ID", "RUNYARD_TRACKING_URI", "RUNYARD_ARTIFACT_URI", "RUNYARD_WORKSPACE",
                "RUNYARD_CLUSTER", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
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


def wait_for(condition, timeout: float = 60.0, what: str = "the condition", interval: float = 0.05):
    """Wait until ``condition()`` is true (its value is returned); fail naming ``what`` after ``timeout`` seconds.
    Tests wait for states this way, never sleep-then-assert: a slow or busy machine only makes them slower."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


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
    from runyard.config.package_index import pip_settings

    settings = pip_settings()
    local = [u for u in (settings.index_url, *settings.extra_index_urls) if u and u.startswith("file://")]
    if not local:
        pytest.skip("this machine has no local package index (pip's file:// index-url/extra-index-url)")
    monkeypatch.setenv("PIP_INDEX_URL", local[0])
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", " ".join(local[1:]))
    # what scripts/setup.sh fetched beyond the local index (Horovod's source release, tf-keras)
    monkeypatch.setenv("PIP_FIND_LINKS", " ".join([*settings.find_links, str(LOCAL_PACKAGES)]))
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    return settings


def write(folder: Path, name: str, code: str) -> Path:
    """A project folder with ``code`` (dedented) as ``folder/name``; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(code))
    return folder


def rank_logs(ws, run, ranks: int) -> list[str]:
    """The output of each rank of a local run."""
    from runyard.compute import get_target

    return ["".join(get_target(ws, "local").log_iter(run.id, rank=r)) for r in range(ranks)]


def env_with(name: str = "e", *pip: str, **python):
    """A built-environment spec: ``env_with("e", "tabulate", inherit_base_packages=True)``."""
    from runyard import Environment

    env = Environment(name)
    for package in pip:
        env.python.conda_dependencies.add_pip_package(package)
    for attribute, value in python.items():
        setattr(env.python, attribute, value)
    return env


# -- storage emulators for the datastore tests, started on 127.0.0.1 for the session ----------------------------
# S3: moto's server (an emulator of the S3 API, not AWS itself) with authentication on: the first three requests make
# an IAM user, its access key and an allow-all policy; every later request must be signed with that key.
# Azure Blob: Microsoft's Azurite emulator (npm, installed by scripts/setup.sh into .cache/azurite), with its
# well-known development account; a wrong key is refused, as by Azure.
ROOT = Path(__file__).resolve().parents[1]
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # Azurite waits for idle keep-alive connections to close
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")


@pytest.fixture(scope="session", autouse=True)
def _no_cloud_credential_lookups():
    """botocore would ask the EC2 metadata address for credentials when none are given: never, here."""
    saved = {k: os.environ.get(k) for k in ("AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key_id: str
    secret: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    pytest.importorskip("moto")
    pytest.importorskip("s3fs")
    import boto3

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    with open(log, "w") as out:  # its own cwd: a session server must outlive the test that first asked for it
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    try:
        _wait_for_port(port, proc, "moto server", log)
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="runyard-test")
        key = iam.create_access_key(UserName="runyard-test")["AccessKey"]
        iam.put_user_policy(UserName="runyard-test", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        stop(proc)


@dataclass(frozen=True)
class Azurite:
    endpoint: str  # the blob service URL, path-style: http://127.0.0.1:PORT/devstoreaccount1
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY


def _azurite_binary() -> str | None:
    local = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    pytest.importorskip("adlfs")
    binary = _azurite_binary()
    if binary is None:
        pytest.skip("Azurite is not installed (scripts/setup.sh installs it with npm into .cache/azurite)")
    port = free_port()
    folder = tmp_path_factory.mktemp("azurite")
    log = folder / "azurite.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder),
                                 "--skipApiVersionCheck", "--loose", "--silent"], stdout=out, stderr=subprocess.STDOUT,
                                cwd=folder)
    try:
        _wait_for_port(port, proc, "Azurite", log)
        yield Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
    finally:
        stop(proc)


@dataclass(frozen=True)
class GcsEmulator:
    endpoint: str


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory):
    """gcp-storage-emulator (PyPI): the GCS JSON API on 127.0.0.1, files in memory. It checks no credentials."""
    pytest.importorskip("gcsfs")
    binary = Path(sys.executable).parent / "gcp-storage-emulator"
    assert binary.exists(), "scripts/setup.sh installs gcp-storage-emulator (the dev extra)"
    port = free_port()
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(binary), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        _wait_for_port(port, proc, "gcp-storage-emulator", log)
        yield GcsEmulator(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


# -- a two-node Ray cluster (the Ray suite: scripts/test_ray.sh runs it in a loopback-only network namespace) ----
def _loopback_only() -> bool:
    import psutil

    return set(psutil.net_if_addrs()) <= {"lo"}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not _loopback_only():
        pytest.skip("Ray tests run only in a loopback-only network namespace: bash scripts/test_ray.sh")
    pytest.importorskip("ray")
    from runyard.config.package_index import pip_settings

    # The nodes build environments from this machine's own package sources only (the network rule).
    settings = pip_settings()
    local = [u for u in (settings.index_url, *settings.extra_index_urls) if u and u.startswith("file://")]
    if local:
        os.environ.update(PIP_INDEX_URL=local[0], PIP_EXTRA_INDEX_URL=" ".join(local[1:]), UV_OFFLINE="1",
                          UV_PYTHON_DOWNLOADS="never")
    from runyard import Workspace
    from runyard.compute import ComputeTarget, RayCompute

    ws = Workspace(tmp_path_factory.mktemp("ray") / "ws")
    started = time.monotonic()
    target = ComputeTarget.create(ws, "cluster", RayCompute.provisioning_configuration(
        max_nodes=2, min_nodes=2, cpus_per_node=2, queue_timeout_seconds=600))
    status = target.wait_for_completion(show_output=True, min_node_count=2, timeout_in_minutes=3)
    print(f"two-node cluster up in {time.monotonic() - started:.1f} s")
    assert status.node_count == 2 and status.cpus == 4
    yield ws, target
    state = target.state
    target.delete()
    import psutil

    assert not any(psutil.pid_exists(p) for p in state["pids"])


