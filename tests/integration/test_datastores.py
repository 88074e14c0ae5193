"""Datastores for real: the workspace's local folder, S3 through moto's server, Azure Blob through Azurite."""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from runyard import DataError, NotFound, ValidationError, Workspace
from runyard.data import Datastore

pytestmark = [pytest.mark.integration, pytest.mark.data]


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def _tree(root: Path, count: int, prefix: str = "f") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        sub = root / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"{prefix}{i}.txt").write_text(f"file {i}\n" * (1 + i % 7))
    return root


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _round_trip(ds: Datastore, tmp_path: Path, count: int = 60) -> None:
    """Upload, re-upload (nothing moves), change one file (only it moves), download, overwrite semantics."""
    src = _tree(tmp_path / "src", count)
    ref = ds.upload(str(src), target_path="data/set", overwrite=True, show_progress=False)
    assert ref.path_on_datastore == "data/set"
    assert ds.last_transfer.transferred == count
    assert len(ds.list_files("data/set")) == count

    ds.upload(str(src), target_path="data/set", overwrite=True, show_progress=False)
    assert (ds.last_transfer.transferred, ds.last_transfer.skipped) == (0, count)

    (src / "d3" / "f3.txt").write_text("changed\n")
    ds.upload(str(src), target_path="data/set", overwrite=True, show_progress=False)
    assert (ds.last_transfer.transferred, ds.last_transfer.skipped) == (1, count - 1)

    (src / "d4" / "f4.txt").write_text("changed without overwrite\n")
    ds.upload(str(src), target_path="data/set", overwrite=False, show_progress=False)
    assert ds.last_transfer.transferred == 0  # existing files are kept without overwrite=True

    out = tmp_path / "out"
    assert ds.download(str(out), prefix="data/set", show_progress=False) == count
    assert (out / "data" / "set" / "d4" / "f4.txt").read_text() == "file 4\n" * 5  # the stored one
    (src / "d4" / "f4.txt").write_text("file 4\n" * 5)
    _same_tree(src, out / "data" / "set")
    assert ds.download(str(out), prefix="data/set", overwrite=True, show_progress=False) == 0  # all unchanged

    ds.upload_files([str(src / "d1" / "f1.txt")], target_path="single", overwrite=True, show_progress=False)
    assert ds.list_files("single") == {"single/f1.txt": (src / "d1" / "f1.txt").stat().st_size}


def test_default_datastore_is_a_local_folder_and_round_trips(ws, tmp_path):
    ds = ws.get_default_datastore()
    assert ds.name == "workspaceblobstore" and ds.datastore_type == "Local" and ds.is_default
    assert Path(ds.files_uri()) == ws.path / "datastores" / "workspaceblobstore"
    _round_trip(ds, tmp_path)
    assert list(ws.datastores) == ["workspaceblobstore"]
    assert Datastore(ws, "workspaceblobstore") == ds


def test_reupload_of_an_unchanged_thousand_file_folder_transfers_nothing(ws, tmp_path):
    ds = ws.get_default_datastore()
    src = _tree(tmp_path / "big", 1000)
    ds.upload(str(src), target_path="big", show_progress=False)
    first = ds.last_transfer
    assert first.transferred == 1000
    ds.upload(str(src), target_path="big", overwrite=True, show_progress=False)
    again = ds.last_transfer
    assert (again.transferred, again.skipped, again.bytes) == (0, 1000, 0)


def test_register_local_and_default_switch(ws, tmp_path):
    folder = tmp_path / "shared"
    with pytest.raises(NotFound, match="not a folder"):
        Datastore.register_local(ws, "shared", folder)
    ds = Datastore.register_local(ws, "shared", folder, create_if_not_exists=True)
    with pytest.raises(ValidationError, match="already exists"):
        Datastore.register_local(ws, "shared", folder)
    ws.get_default_datastore()
    ws.set_default_datastore("shared")
    assert ws.get_default_datastore().name == "shared"
    assert sorted(ws.datastores) == ["shared", "workspaceblobstore"]
    with pytest.raises(NotFound, match="did you mean shared"):
        Datastore.get(ws, "sharde")
    ds.unregister()
    assert "shared" not in ws.datastores


def test_bad_paths_and_sources_are_refused_before_anything_moves(ws, tmp_path):
    ds = ws.get_default_datastore()
    src = _tree(tmp_path / "src", 3)
    for bad in ("../outside", "/etc", "a/../../b", "~/x"):
        with pytest.raises(ValidationError):
            ds.upload(str(src), target_path=bad, show_progress=False)
    with pytest.raises(NotFound, match="does not exist"):
        ds.upload(str(tmp_path / "missing"), target_path="x", show_progress=False)
    with pytest.raises(NotFound, match="no such file"):
        ds.upload_files([str(tmp_path / "missing.txt")], show_progress=False)
    assert ds.list_files() == {}


def test_a_file_that_changes_during_upload_is_not_kept(ws, tmp_path):
    ds = ws.get_default_datastore()
    src = tmp_path / "growing"
    src.mkdir()
    (src / "steady.bin").write_bytes(b"s" * 1000)
    growing = src / "log.bin"
    growing.write_bytes(os.urandom(32 << 20))
    stop = threading.Event()

    def append() -> None:  # a writer still at work (bounded: at most 40 MB more)
        with open(growing, "ab") as f:
            for _ in range(10_000):
                if stop.is_set():
                    break
                f.write(b"x" * 4096)
                f.flush()
                time.sleep(0.001)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        with pytest.raises(DataError, match="changed while they were being uploaded") as info:
            ds.upload(str(src), target_path="g", show_progress=False)
    finally:
        stop.set()
        writer.join()
    assert "log.bin" in str(info.value)
    assert ds.list_files("g") == {"g/steady.bin": 1000}  # the changing file is not left half-copied


# -- S3 (moto's server) -------------------------------------------------------------------------------------------
def _s3(ws, s3_server, name="lake", **kw):
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    return Datastore.register_s3(ws, name, bucket_name=bucket, endpoint_url=s3_server.endpoint, region="us-east-1",
                                 access_key_id=s3_server.key_id, secret_access_key=s3_server.secret,
                                 create_if_not_exists=True, **kw)


def test_s3_round_trip_and_the_secret_is_never_shown(ws, tmp_path, s3_server):
    ds = _s3(ws, s3_server)
    assert ds.datastore_type == "S3" and ds.credential_type == "keys"
    _round_trip(ds, tmp_path)
    assert ds.describe()["secret_access_key"] == "***"
    assert s3_server.secret not in repr(ds) + str(ds.describe())
    db = (ws.path / "runyard.db").read_bytes() + b"".join(p.read_bytes() for p in ws.path.glob("runyard.db*"))
    assert s3_server.secret.encode() not in db  # encrypted at rest
    again = Datastore.get(Workspace(ws.path), "lake")  # another process decrypts it with the workspace's key
    assert again.list_files("data/set")


def test_s3_multipart_files_are_recognised_unchanged(ws, tmp_path, s3_server, monkeypatch):
    import runyard.data.hashing as hashing

    monkeypatch.setattr(hashing, "S3_PART", 5 << 20)  # S3's smallest part: an 11 MB file goes in 3 parts
    ds = _s3(ws, s3_server, "parts")
    src = tmp_path / "big"
    src.mkdir()
    (src / "blob.bin").write_bytes(os.urandom(11 << 20))
    ds.upload(str(src), "big", show_progress=False)
    etag = s3_server.client().head_object(Bucket=ds.bucket_name, Key="big/blob.bin")["ETag"].strip('"')
    assert etag.endswith("-3")
    ds.upload(str(src), "big", overwrite=True, show_progress=False)
    assert ds.last_transfer.transferred == 0


def test_s3_credentials_from_the_environment(ws, tmp_path, s3_server, monkeypatch):
    bucket = f"env-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    ds = Datastore.register_s3(ws, "envlake", bucket_name=bucket, endpoint_url=s3_server.endpoint, region="us-east-1")
    assert ds.credential_type == "environment" and ds.describe().get("secret_access_key") is None
    ds.upload_files([str(_tree(tmp_path / "e", 2) / "d0" / "f0.txt")], target_path="x", show_progress=False)
    assert list(ds.list_files("x")) == ["x/f0.txt"]


def test_s3_wrong_credentials_and_unreachable_endpoints_name_the_store_not_the_secret(ws, s3_server):
    bucket = f"w-{uuid.uuid4().hex[:8]}"
    s3_server.client().create_bucket(Bucket=bucket)
    wrong = "wrong" + s3_server.secret[5:]
    with pytest.raises(DataError) as info:
        Datastore.register_s3(ws, "bad", bucket_name=bucket, endpoint_url=s3_server.endpoint, region="us-east-1",
                              access_key_id=s3_server.key_id, secret_access_key=wrong)
    text = str(info.value)
    assert "'bad'" in text and "credentials were refused" in text and wrong not in text
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(DataError, match="cannot be reached") as info:
        Datastore.register_s3(ws, "gone", bucket_name=bucket, endpoint_url=f"http://127.0.0.1:{dead}",
                              region="us-east-1", access_key_id=s3_server.key_id, secret_access_key=s3_server.secret)
    assert "'gone'" in str(info.value) and s3_server.secret not in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        Datastore.register_s3(ws, "nobucket", bucket_name="no-such-bucket-here", endpoint_url=s3_server.endpoint,
                              region="us-east-1", access_key_id=s3_server.key_id, secret_access_key=s3_server.secret)
    assert sorted(ws.datastores) == ["workspaceblobstore"]  # nothing was registered


# -- Azure Blob (Azurite) -----------------------------------------------------------------------------------------
def test_azure_blob_round_trip(ws, tmp_path, azurite):
    ds = Datastore.register_azure_blob_container(
        ws, "blobs", container_name=f"c{uuid.uuid4().hex[:10]}", account_name=azurite.account,
        account_key=azurite.key, blob_endpoint=azurite.endpoint, create_if_not_exists=True)
    assert ds.datastore_type == "AzureBlob" and ds.describe()["account_key"] == "***"
    _round_trip(ds, tmp_path)


def test_azure_wrong_key_is_refused_without_echoing_it(ws, azurite):
    container = f"c{uuid.uuid4().hex[:10]}"
    Datastore.register_azure_blob_container(ws, "ok", container_name=container, account_name=azurite.account,
                                            account_key=azurite.key, blob_endpoint=azurite.endpoint,
                                            create_if_not_exists=True)
    import base64

    wrong = base64.b64encode(b"not the key of this account at all!!").decode()
    with pytest.raises(DataError) as info:
        Datastore.register_azure_blob_container(ws, "nope", container_name=container, account_name=azurite.account,
                                                account_key=wrong, blob_endpoint=azurite.endpoint)
    assert "'nope'" in str(info.value) and "refused" in str(info.value) and wrong not in str(info.value)
    assert "nope" not in ws.datastores


# -- Google Cloud Storage (gcp-storage-emulator) --------------------------------------------------------------------
def _gcs(ws, gcs_emulator, name="gcs", **kw):
    return Datastore.register_gcs(ws, name, bucket_name=f"g-{uuid.uuid4().hex[:8]}", endpoint_url=gcs_emulator.endpoint,
                                  anonymous=True, project="test", create_if_not_exists=True, **kw)


def test_gcs_round_trip(ws, tmp_path, gcs_emulator):
    ds = _gcs(ws, gcs_emulator, path_prefix="team")
    assert ds.datastore_type == "GCS" and ds.describe()["endpoint_url"] == gcs_emulator.endpoint
    _round_trip(ds, tmp_path)
    assert ds.files.uri("x") == f"gs://{ds.describe()['bucket']}/team/x"


def test_gcs_bad_credentials_missing_buckets_and_unreachable_endpoints_are_clear(ws, tmp_path, gcs_emulator):
    broken = tmp_path / "service-account.json"
    broken.write_text('{"type": "service_account", "private_key": "not a key"}')
    with pytest.raises(DataError) as info:
        Datastore.register_gcs(ws, "badkey", bucket_name="some-bucket", endpoint_url=gcs_emulator.endpoint,
                               project="test", credentials_file=str(broken))
    assert "'badkey'" in str(info.value) and "not a key" not in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        Datastore.register_gcs(ws, "nobucket", bucket_name="no-such-bucket-here", endpoint_url=gcs_emulator.endpoint,
                               anonymous=True, project="test")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(DataError, match="cannot be reached") as info:
        Datastore.register_gcs(ws, "gone", bucket_name="some-bucket", endpoint_url=f"http://127.0.0.1:{dead}",
                               anonymous=True, project="test")
    assert "'gone'" in str(info.value) and time.monotonic() - started < 60
    assert sorted(ws.datastores) == ["workspaceblobstore"]  # nothing was registered
