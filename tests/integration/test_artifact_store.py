"""The fsspec artifact store: a local folder, and a non-local fsspec filesystem (memory://)."""
import io
import os
import uuid

import pytest

from runyard.errors import NotFound, ValidationError
from runyard.store.artifacts import open_artifact_store


@pytest.fixture(params=["local", "memory"])
def artifacts(request, tmp_path):
    root = str(tmp_path / "artifacts") if request.param == "local" else f"memory://runyard-{uuid.uuid4().hex}"
    return open_artifact_store(root)


def test_put_get_list_open(artifacts, tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(b"abc" * 100)
    assert artifacts.put_file("run1", "outputs/m.bin", str(src)) == 300
    assert artifacts.put_stream("run1", "logs/out.txt", io.BytesIO(b"log line\n")) == 9
    assert artifacts.list_files("run1") == [("logs/out.txt", 9), ("outputs/m.bin", 300)]
    assert artifacts.list_files("run1", "outputs") == [("outputs/m.bin", 300)]
    assert artifacts.list_files("other") == []
    artifacts.get_file("run1", "outputs/m.bin", str(tmp_path / "dl" / "m.bin"))
    assert (tmp_path / "dl" / "m.bin").read_bytes() == b"abc" * 100
    with artifacts.open("run1", "logs/out.txt") as f:
        assert f.read() == b"log line\n"
    assert artifacts.uri("run1", "outputs/m.bin").endswith("runs/run1/outputs/m.bin")
    with pytest.raises(NotFound, match="no file 'nope'"):
        artifacts.get_file("run1", "nope", str(tmp_path / "x"))


def test_names_cannot_leave_the_run_folder(artifacts, tmp_path):
    src = tmp_path / "f"
    src.write_text("x")
    for bad in ("../run2/f", "/abs/f", "a/../../f"):
        with pytest.raises(ValidationError):
            artifacts.put_file("run1", bad, str(src))
    with pytest.raises(ValidationError, match="invalid run id"):
        artifacts.put_file("../escape", "f", str(src))


def test_a_symlink_inside_the_run_folder_cannot_point_out(tmp_path):
    store = open_artifact_store(str(tmp_path / "artifacts"))
    src = tmp_path / "f"
    src.write_text("x")
    store.put_file("run1", "ok/f", str(src))
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "artifacts" / "runs" / "run1" / "link")
    with pytest.raises(ValidationError, match="outside the run's folder"):
        store.put_file("run1", "link/f", str(src))
    assert not (outside / "f").exists()


def test_unknown_or_uninstalled_schemes_say_what_to_do():
    from runyard.errors import StoreError

    with pytest.raises(StoreError, match="cannot open artifact store 'nosuch://bucket'"):
        open_artifact_store("nosuch://bucket")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match="pip install s3fs"):
            open_artifact_store("s3://bucket/prefix")
