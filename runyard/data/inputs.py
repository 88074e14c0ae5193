"""A run's data inputs: checked and fixed at submission, turned into paths on the compute when the run starts.

At submission (:func:`bind`) each input is checked — the datastore exists and has the path, the dataset exists —
and an unregistered dataset gets its files' hashes and a content id, so the run consumes exactly those files.
When the run starts (:func:`prepare`, on each node) every input becomes a path, exported as
``RUNYARD_DATA_<name>`` (and ``AZUREML_DATAREFERENCE_<name>``); the arguments that held the reference hold
``${RUNYARD_DATA_<name>}``, expanded then. ``RUNYARD_INPUT_DATASETS`` carries them all for
``Run.get_context().input_datasets``.

    mount    a local datastore: its folder itself; a dataset: a read-only folder in the workspace's cache (files
             hard-linked from the content store); a remote datastore: a cached download, kept in sync (no FUSE)
    download a copy in the run's working folder (``path_on_compute``, default ``inputs/<name>``)
    direct   a tabular dataset: ``run.input_datasets[name]`` is the dataset
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import plugins
from runyard.config.job import collect_inputs
from runyard.errors import NotFound

if TYPE_CHECKING:
    from runyard.config.job import JobSpec
    from runyard.workspace import Workspace

INPUTS_VAR = "RUNYARD_INPUT_DATASETS"
AZURE_PREFIX = "AZUREML_DATAREFERENCE_"


collect = collect_inputs  # the inputs among a run configuration's arguments (runyard.config.job)


def bind(ws: "Workspace", job: "JobSpec") -> tuple["JobSpec", list[tuple[str, dict[str, Any]]]]:
    """Check every input before anything starts; unsaved datasets get hashes and an id. Returns the job with its
    inputs fixed, and the dataset records :func:`save` must store when the run is submitted."""
    from runyard.data.dataset import _fingerprint, anonymous_id
    from runyard.data.datastore import Datastore

    if not job.inputs:
        return job, []
    bound, pending = [], []
    for spec in job.inputs:
        spec = dict(spec)
        if "datastore" in spec:
            store = Datastore.get(ws, spec["datastore"])
            if spec["path"] and not store.files.list(spec["path"]):
                raise NotFound(f"input {spec['name']!r}: {store.files.label} has nothing at {spec['path']!r}")
        elif "run" in spec:
            ws.metadata.get_run(spec["run"])  # NotFound names the run
            if not _run_files(ws, spec):
                raise NotFound(f"input {spec['name']!r}: run {spec['run']} stored no files under {spec['path']}/ "
                               "(did it write its checkpoints to ./outputs?)")
        elif spec.get("dataset_id"):
            record = ws.metadata.get_dataset_by_id(spec["dataset_id"])
            spec.update(dataset_name=record.name, dataset_version=record.version)
        else:
            unsaved = spec.pop("dataset")
            record = {"type": unsaved["type"], "description": None, "tags": {}, "definition": unsaved["definition"],
                      "files": _fingerprint(ws, unsaved["definition"], unsaved["files"])}
            spec["dataset_id"] = anonymous_id(record)
            pending.append((spec["dataset_id"], record))
        bound.append(spec)
    return replace(job, inputs=tuple(bound)), pending


def save(ws: "Workspace", run_id: str, job: "JobSpec", pending: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Store the unsaved datasets a run consumes and record the run's inputs (lineage)."""
    from runyard.store.metadata.entities import RunInputRecord

    for dataset_id, record in pending:
        ws.metadata.save_dataset(record, dataset_id=dataset_id)
    ws.metadata.record_run_inputs(run_id, [
        RunInputRecord(run_id, spec["name"], spec.get("dataset_id"), spec["mode"],
                       {k: spec[k] for k in ("datastore", "run", "path", "path_on_compute") if spec.get(k) is not None})
        for spec in job.inputs])


def prepare(ws: "Workspace", inputs: Sequence[Mapping[str, Any]], workdir: Path,
            say: Callable[[str], None]) -> dict[str, str]:
    """Make every input a path on this machine; return the environment variables that name them."""
    from runyard.data.datastore import data_env_var

    env: dict[str, str] = {}
    table: dict[str, dict[str, str]] = {}
    for spec in inputs:
        name = spec["name"]
        if spec["mode"] == "direct":
            table[name] = {"dataset_id": spec["dataset_id"]}
            value = spec["dataset_id"]
        else:
            read = _reference_path if "datastore" in spec else _run_path if "run" in spec else _dataset_path
            path = read(ws, spec, workdir, say)
            table[name] = {"path": str(path)}
            value = str(path)
        env[data_env_var(name)] = env[AZURE_PREFIX + name] = value
    env[INPUTS_VAR] = json.dumps(table)
    return env


def _target(spec: Mapping[str, Any], workdir: Path) -> Path:
    where = spec.get("path_on_compute")
    if not where:
        return workdir / "inputs" / spec["name"]
    path = Path(os.path.expanduser(where))
    return path if path.is_absolute() else workdir / path


def _reference_path(ws: "Workspace", spec: Mapping[str, Any], workdir: Path, say: Callable[[str], None]) -> Path:
    from runyard.data.dataset import read_only
    from runyard.data.datastore import Datastore
    from runyard.data.hashing import hash_cache_for
    from runyard.data.transfer import download

    store = Datastore.get(ws, spec["datastore"])
    files, key = store.files, spec["path"]
    local = files.local_path(key)
    if spec["mode"] == "mount" and local is not None:
        say(f"input {spec['name']}: {local} (the datastore's own folder, mounted as is)")
        return local
    listing = files.list(key)
    single = len(listing) == 1 and key in listing
    if spec["mode"] == "mount":  # a remote store: a cached download, kept in sync, read-only
        cache_root = ws.path / "cache" / "datastores" / store.name
        report = download(files, key, cache_root, True, hash_cache_for(ws.path), show_progress=False, listing=listing)
        read_only(cache_root / key)
        say(f"input {spec['name']}: {files.uri(key)} mounted as a cached download in {cache_root / key} "
            f"({report.describe('fetched')}; FUSE is not used)")
        return cache_root / key
    target = _target(spec, workdir)
    strip = key.rsplit("/", 1)[0] if single and "/" in key else key if not single else ""
    report = download(files, key, target, True, hash_cache_for(ws.path), show_progress=False, listing=listing,
                      strip=strip)
    say(f"input {spec['name']}: {files.uri(key)} downloaded to {target} ({report.describe('downloaded')})")
    return target / key.rsplit("/", 1)[-1] if single else target


def _run_files(ws: "Workspace", spec: Mapping[str, Any]) -> list[str]:
    prefix = spec["path"].rstrip("/")
    return [a.path for a in ws.metadata.list_artifacts(spec["run"], prefix or None)]


def _run_path(ws: "Workspace", spec: Mapping[str, Any], workdir: Path, say: Callable[[str], None]) -> Path:
    """Another run's stored files under ``path``, downloaded (the folder's contents land in the input's folder)."""
    target = _target(spec, workdir)
    names = _run_files(ws, spec)
    prefix = spec["path"].rstrip("/")
    for name in names:
        rel = name[len(prefix):].lstrip("/") if prefix and name != prefix else os.path.basename(name)
        local = target / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        ws.artifacts.get_file(spec["run"], name, str(local))
    say(f"input {spec['name']}: {len(names)} file(s) of run {spec['run']} under {prefix or './'} downloaded to {target}")
    return target


def _dataset_path(ws: "Workspace", spec: Mapping[str, Any], workdir: Path, say: Callable[[str], None]) -> Path:
    from runyard.data.dataset import materialize, mounted, single_file

    record = ws.metadata.get_dataset_by_id(spec["dataset_id"])
    what = f"{record.name}:{record.version}" if record.name else record.id
    if spec["mode"] == "mount":
        root = mounted(ws, record, say)
        say(f"input {spec['name']}: dataset {what} mounted read-only at {root} ({len(record.files)} files)")
    else:
        root = _target(spec, workdir)
        materialize(ws, record, root, link=False, say=say)
        say(f"input {spec['name']}: dataset {what} downloaded to {root} ({len(record.files)} files)")
    one = single_file(record)
    return root / one if one else root


def input_datasets(ws_factory: Callable[[], "Workspace"]) -> dict[str, Any]:
    """What ``run.input_datasets`` holds in a script: name → path (mounted or downloaded files) or dataset."""
    raw = os.environ.get(INPUTS_VAR)
    if not raw:
        return {}
    out: dict[str, Any] = {}
    for name, entry in json.loads(raw).items():
        if "path" in entry:
            out[name] = entry["path"]
        else:
            from runyard.data.dataset import Dataset

            out[name] = Dataset.get_by_id(ws_factory(), entry["dataset_id"])
    return out


def details(ws: "Workspace", run_id: str) -> list[dict[str, Any]]:
    """``run.get_details()["inputDatasets"]`` (Azure's shape) and the run's datastore references."""
    out = []
    for item in ws.metadata.list_run_inputs(run_id):
        mechanism = {"mount": "Mount", "download": "Download", "direct": "Direct"}[item.mode]
        entry: dict[str, Any] = {"consumptionDetails": {"type": "RunInput", "inputName": item.name,
                                                        "mechanism": mechanism}}
        if item.dataset_id:
            try:
                record = ws.metadata.get_dataset_by_id(item.dataset_id)
                entry["dataset"] = {"id": record.id, "name": record.name, "version": record.version,
                                    "files": len(record.files)}
            except NotFound:
                entry["dataset"] = {"id": item.dataset_id}
        elif item.details.get("run"):  # where Azure keeps a run's files: its artifact store
            entry["dataReference"] = {"datastore": "workspaceartifactstore",
                                      "path": f"ExperimentRun/dcid.{item.details['run']}/{item.details.get('path', '')}"}
        else:
            entry["dataReference"] = {"datastore": item.details.get("datastore"), "path": item.details.get("path")}
        out.append(entry)
    return out


__all__ = ["AZURE_PREFIX", "INPUTS_VAR", "bind", "collect", "details", "input_datasets", "prepare", "save"]


# The submission and the runtime (layers below) bind and prepare a run's data inputs through this module.
plugins.register(plugins.RUN_INPUTS, "data", sys.modules[__name__])
