"""Datasets and run inputs for real: versions that stay put, runs that mount and download, lineage, HTTP files."""
from __future__ import annotations

import functools
import http.server
import json
import textwrap
import threading
import uuid
from pathlib import Path

import pytest

from runyard import DataError, Dataset, Experiment, NotFound, ScriptRunConfig, ValidationError, Workspace
from runyard.data import Datastore
from runyard.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.data]


@pytest.fixture()
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def _files(root: Path, names: dict[str, str]) -> Path:
    for name, text in names.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


READER = textwrap.dedent('''
    import argparse, json, os, sys
    from runyard import Run
    p = argparse.ArgumentParser()
    p.add_argument("--data", action="append", default=[])
    a = p.parse_args()
    run = Run.get_context()
    seen = {}
    for path in a.data:
        if os.path.isdir(path):
            seen[path] = {os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f)).read()
                          for d, _, fs in os.walk(path) for f in fs}
        else:
            seen[path] = open(path).read()
    inputs = {k: (v if isinstance(v, str) else "table:" + str(len(v.to_pandas_dataframe())))
              for k, v in run.input_datasets.items()}
    def writable(p):  # by the mode bits (root may write anything)
        files = [p] if os.path.isfile(p) else [os.path.join(d, f) for d, _, fs in os.walk(p) for f in fs]
        return any(os.stat(f).st_mode & 0o222 for f in files)
    writable = {p: writable(p) for p in a.data}
    with open("outputs/seen.json", "w") as f:
        json.dump({"args": a.data, "seen": seen, "inputs": inputs, "writable": writable}, f)
''')


def _run(ws, tmp_path, arguments, inputs=None) -> dict:
    proj = tmp_path / f"proj-{uuid.uuid4().hex[:6]}"
    proj.mkdir()
    (proj / "read.py").write_text(READER)
    run = Experiment(ws, "data").submit(ScriptRunConfig(str(proj), "read.py", arguments=arguments, inputs=inputs))
    run.wait_for_completion()
    assert run.get_status() == "Completed", run.get_details()["error"]
    out = tmp_path / f"seen-{run.id}"
    run.download_file("outputs/seen.json", out)
    return {"run": run, **json.loads(out.read_text())}


def test_a_registered_version_stays_the_same_after_its_sources_change(ws, tmp_path):
    src = _files(tmp_path / "raw", {"a.txt": "alpha", "sub/b.txt": "beta"})
    v1 = Dataset.File.from_files(str(src)).register(ws, "letters", description="two letters", tags={"kind": "text"})
    assert (v1.name, v1.version, v1.description, v1.tags) == ("letters", 1, "two letters", {"kind": "text"})
    assert sorted(v1.to_path()) == ["/a.txt", "/sub/b.txt"]
    assert all(len(f["sha256"]) == 64 and f["size"] for f in v1.files)

    (src / "a.txt").write_text("ALPHA, changed")
    (src / "c.txt").write_text("gamma, new")
    again = Dataset.get_by_name(ws, "letters", version=1)
    assert again.files == v1.files and sorted(again.to_path()) == ["/a.txt", "/sub/b.txt"]
    got = tmp_path / "got"
    again.download(str(got))
    assert (got / "a.txt").read_text() == "alpha" and not (got / "c.txt").exists()  # the registered content

    with pytest.raises(ValidationError, match="create_new_version=True"):
        Dataset.File.from_files(str(src)).register(ws, "letters")
    v2 = Dataset.File.from_files(str(src)).register(ws, "letters", create_new_version=True)
    assert v2.version == 2 and sorted(v2.to_path()) == ["/a.txt", "/c.txt", "/sub/b.txt"]
    same = Dataset.File.from_files(str(src)).register(ws, "letters", create_new_version=True)
    assert same.version == 2  # the same files again are not a new version
    assert Dataset.get_by_name(ws, "letters").version == 2
    assert [d.version for d in v2.versions()] == [2, 1]
    assert set(ws.datasets) == {"letters"}
    with pytest.raises(ValidationError, match="exist in"):
        again.download(str(got))
    again.download(str(got), overwrite=True)


def test_missing_names_and_versions_say_what_exists(ws, tmp_path):
    src = _files(tmp_path / "raw", {"x.csv": "a,b\n1,2\n"})
    Dataset.File.from_files(str(src)).register(ws, "mnist-train")
    with pytest.raises(NotFound, match="did you mean mnist-train"):
        Dataset.get_by_name(ws, "mnist-trian")
    with pytest.raises(NotFound, match="versions: 1"):
        Dataset.get_by_name(ws, "mnist-train", version=7)
    with pytest.raises(NotFound, match="matches no file"):
        Dataset.File.from_files(str(tmp_path / "nothing-here"))
    with pytest.raises(NotFound, match="matches no file"):
        Dataset.File.from_files((ws.get_default_datastore(), "no/such/*.gz"))


def test_runs_read_mounted_and_downloaded_datastore_paths_and_datasets(ws, tmp_path):
    ds = ws.get_default_datastore()
    ds.upload(str(_files(tmp_path / "mnist", {"train.gz": "T", "test.gz": "E", "notes.md": "n"})), "mnist",
              show_progress=False)
    registered = Dataset.File.from_files((ds, "mnist/*.gz")).register(ws, "mnist")
    single = Dataset.File.from_files((ds, "mnist/notes.md"))  # one file, unregistered: saved with the run
    seen = _run(ws, tmp_path, ["--data", ds.path("mnist").as_mount(),
                               "--data", registered.as_named_input("mnist").as_mount(),
                               "--data", registered.as_named_input("copy").as_download(),
                               "--data", single.as_named_input("notes").as_download()])
    mount, dmount, dcopy, note = seen["args"]
    assert mount == str(ds.files.local_path("mnist"))  # a local datastore: its own folder
    assert seen["seen"][mount] == {"train.gz": "T", "test.gz": "E", "notes.md": "n"}
    assert seen["seen"][dmount] == {"train.gz": "T", "test.gz": "E"} and not seen["writable"][dmount]
    assert seen["seen"][dcopy] == {"train.gz": "T", "test.gz": "E"} and "/wd/inputs/copy" in dcopy
    assert seen["seen"][note] == "n" and note.endswith("notes.md")  # a one-file dataset: the file's path
    assert seen["inputs"] == {"workspaceblobstore_mnist": mount, "mnist": dmount, "copy": dcopy, "notes": note}

    run = seen["run"]
    details = {d["consumptionDetails"]["inputName"]: d for d in run.get_details()["inputDatasets"]}
    assert details["mnist"]["dataset"]["name"] == "mnist" and details["mnist"]["consumptionDetails"]["mechanism"] == "Mount"
    assert details["copy"]["consumptionDetails"]["mechanism"] == "Download"
    assert details["workspaceblobstore_mnist"]["dataReference"] == {"datastore": "workspaceblobstore", "path": "mnist"}
    assert details["notes"]["dataset"]["name"] is None and details["notes"]["dataset"]["files"] == 1
    assert [r.id for r in registered.runs()] == [run.id]
    # The arguments as Azure prints them: each input as what it is, not as the variable that carries its path.
    assert run.get_details()["runDefinition"]["arguments"] == [
        "--data", "$AZUREML_DATAREFERENCE_workspaceblobstore_mnist", "--data", "DatasetConsumptionConfig:mnist",
        "--data", "DatasetConsumptionConfig:copy", "--data", "DatasetConsumptionConfig:notes"]

    # lineage on to models: registered from the run, the model names the datasets the run consumed
    (tmp_path / "m").mkdir()
    model = run.register_model("reader", model_path="outputs/seen.json")
    assert "mnist:1" in model.datasets["training"]
    assert [m.id for m in registered.models()] == [model.id]


def test_inputs_are_checked_before_the_run_is_created(ws, tmp_path):
    ds = ws.get_default_datastore()
    proj = _files(tmp_path / "p", {"read.py": "print(1)"})
    exp = Experiment(ws, "bad-input")
    with pytest.raises(NotFound, match="has nothing at 'missing'"):
        exp.submit(ScriptRunConfig(str(proj), "read.py", arguments=["--data", ds.path("missing").as_mount()]))
    lake = Datastore.register_local(ws, "lake", tmp_path / "lake", create_if_not_exists=True)
    config = ScriptRunConfig(str(proj), "read.py", arguments=["--data", lake.as_mount()])
    lake.unregister()
    with pytest.raises(NotFound, match="no datastore named 'lake'"):
        exp.submit(config)
    with pytest.raises(ConfigError, match="inputs must be a list"):
        exp.submit(ScriptRunConfig(str(proj), "read.py", inputs=["not an input"]))
    assert list(exp.get_runs()) == []


def test_a_tabular_dataset_is_read_in_the_run_as_a_table(ws, tmp_path):
    ds = ws.get_default_datastore()
    ds.upload(str(_files(tmp_path / "t", {"a.csv": "x,y\n1,2\n3,4\n", "b.csv": "x,y\n5,6\n"})), "tables",
              show_progress=False)
    tab = Dataset.Tabular.from_delimited_files(path=(ds, "tables/*.csv"))
    frame = tab.to_pandas_dataframe()
    assert list(frame.columns) == ["x", "y"] and frame["x"].tolist() == [1, 3, 5]
    assert len(tab.take(2).to_pandas_dataframe()) == 2
    tab = tab.register(ws, "xy")
    seen = _run(ws, tmp_path, [], inputs=[tab.as_named_input("xy")])
    assert seen["inputs"] == {"xy": "table:3"}
    with pytest.raises(ValidationError, match="cannot read"):
        Dataset.Tabular.from_parquet_files(path=(ds, "tables/a.csv"))


@pytest.fixture()
def http_files(tmp_path):
    root = _files(tmp_path / "served", {"digits.csv": "p,q\n1,2\n"})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_files_are_downloaded_when_consumed_and_checked(ws, tmp_path, http_files):
    root, base = http_files
    dataset = Dataset.File.from_files([f"{base}/digits.csv"]).register(ws, "web")
    assert dataset.files[0]["size"] == 8 and len(dataset.files[0]["sha256"]) == 64
    seen = _run(ws, tmp_path, ["--data", dataset.as_named_input("web").as_download()])
    assert list(seen["seen"].values()) == ["p,q\n1,2\n"]
    (root / "digits.csv").write_text("p,q\n9,9\n")
    with pytest.raises(DataError, match="has changed since the dataset was saved"):
        dataset.download(str(tmp_path / "again"))
    with pytest.raises(DataError, match="HTTP 404"):
        Dataset.File.from_files([f"{base}/missing.csv"]).register(ws, "gone")


def _remote_datastore(ws, kind, request):
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        return Datastore.register_s3(ws, "lake", bucket_name=f"r-{uuid.uuid4().hex[:8]}", endpoint_url=server.endpoint,
                                     region="us-east-1", access_key_id=server.key_id, secret_access_key=server.secret,
                                     create_if_not_exists=True), server.secret
    emulator = request.getfixturevalue("gcs_emulator")
    return Datastore.register_gcs(ws, "lake", bucket_name=f"r-{uuid.uuid4().hex[:8]}", endpoint_url=emulator.endpoint,
                                  anonymous=True, project="test", create_if_not_exists=True), None


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_runs_consume_remote_data_as_a_cached_download_and_a_copy(ws, tmp_path, request, kind):
    ds, secret = _remote_datastore(ws, kind, request)
    ds.upload(str(_files(tmp_path / "d", {"one.txt": "1", "deep/two.txt": "2"})), "set", show_progress=False)
    dataset = Dataset.File.from_files((ds, "set")).register(ws, f"{kind}set")
    assert all(f.get("tag") and not f.get("stored") for f in dataset.files)  # remote: recorded by ETag/MD5, not copied
    seen = _run(ws, tmp_path, ["--data", ds.path("set").as_mount(), "--data", dataset.as_named_input("s").as_download()])
    mount, copy = seen["args"]
    assert seen["seen"][mount] == {"one.txt": "1", "deep/two.txt": "2"} and "cache/datastores/lake" in mount
    assert not seen["writable"][mount]
    assert seen["seen"][copy] == {"one.txt": "1", "deep/two.txt": "2"}
    if secret:
        assert secret not in json.dumps(seen["run"].get_details(), default=str)

    (tmp_path / "d" / "one.txt").write_text("changed")
    ds.upload(str(tmp_path / "d"), "set", overwrite=True, show_progress=False)
    with pytest.raises(DataError, match="changed since the dataset was saved"):
        dataset.download(str(tmp_path / "after"))


def test_datastore_and_dataset_commands(ws, tmp_path, s3_server):
    import os
    import subprocess
    import sys

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "runyard", *args], capture_output=True, text=True,
                              env={**os.environ, **ws.environment_variables(), "COLUMNS": "200"})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    Datastore.register_s3(ws, "lake", bucket_name=f"c-{uuid.uuid4().hex[:8]}", endpoint_url=s3_server.endpoint,
                          region="us-east-1", access_key_id=s3_server.key_id, secret_access_key=s3_server.secret,
                          create_if_not_exists=True)
    src = _files(tmp_path / "src", {"a.txt": "a", "b/c.txt": "c"})
    assert "uploaded 2 files" in cli("datastore", "upload", str(src), "-t", "set", "-d", "lake")
    assert "uploaded 0 files" in cli("datastore", "upload", str(src), "-t", "set", "-d", "lake", "--overwrite")
    listing = cli("datastore", "list")
    assert "lake" in listing and "S3" in listing and "keys" in listing and s3_server.secret not in listing
    shown = cli("datastore", "show", "lake", "--prefix", "set")
    assert '"secret_access_key": "***"' in shown and "set/b/c.txt" in shown and s3_server.secret not in shown
    cli("datastore", "download", str(tmp_path / "back"), "--prefix", "set", "-d", "lake")
    assert (tmp_path / "back" / "set" / "b" / "c.txt").read_text() == "c"
    assert "registered letters:1 (2 files" in cli("dataset", "register", "letters", "lake:set", "--description", "x")
    assert "letters" in cli("dataset", "list")
    assert "a.txt" in cli("dataset", "show", "letters:1")
    assert "2 file(s)" in cli("dataset", "download", "letters", str(tmp_path / "dl"))
    assert (tmp_path / "dl" / "b" / "c.txt").read_text() == "c"

