"""Storage emulators for the datastore tests, started on 127.0.0.1 for the session.

- S3: moto's server (an emulator of the S3 API, not AWS itself) with authentication on: the first three requests
  make an IAM user, its access key and an allow-all policy; every later request must be signed with that key.
- Azure Blob: Microsoft's Azurite emulator (npm package, installed by scripts/setup.sh into .cache/azurite), with its
  well-known development account; a wrong key is refused, as by Azure.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
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
                                 "--skipApiVersionCheck", "--loose", "--silent"], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, proc, "Azurite", log)
        yield Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
    finally:
        stop(proc)
