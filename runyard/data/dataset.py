"""Datasets: versioned, reproducible file lists (``FileDataset``) and tables (``TabularDataset``).

    dataset = Dataset.File.from_files(path=[(ds, "mnist/*.gz")])        # or local paths, or https:// URLs
    dataset = dataset.register(ws, name="mnist", description="...", create_new_version=True)
    Dataset.get_by_name(ws, "mnist", version="latest").download(target_path="here")
    ScriptRunConfig(..., arguments=["--data-folder", dataset.as_named_input("mnist").as_mount()])

A version records its files with sizes and hashes when it is saved, so it stays the same when the sources change:
files on this machine (local paths, local datastores) are kept by content in the workspace's content-addressed
store (each distinct file once, shared with code snapshots and models); files in remote datastores are recorded
by their ETag / Content-MD5 and checked when consumed; ``https://`` files by SHA-256, downloaded (and checked) when
consumed. A changed remote file is an error naming it, never silently different data.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import plugins, validation
from runyard.data.datastore import DataReference, Datastore, clean_path, input_name
from runyard.errors import DataError, NotFound, ValidationError
from runyard.store import blobs

if TYPE_CHECKING:
    from runyard.store.metadata.entities import DatasetRecord
    from runyard.workspace import Workspace

_GLOB = re.compile(r"[*?\[]")
_HTTP_TIMEOUT = 30


# -- sources → file lists ----------------------------------------------------------------------------------------
def _sources(path: Any) -> list[Any]:
    """``path`` as a list of sources: (datastore, "glob"), DataReference, local path / glob, http(s) URL."""
    if isinstance(path, (str, os.PathLike, DataReference)) or (isinstance(path, tuple) and len(path) == 2
                                                                 and isinstance(path[0], Datastore)):
        return [path]
    if isinstance(path, Sequence) and path:
        return list(path)
    raise ValidationError("path must be a path, a (datastore, 'path/glob') pair, a URL, or a non-empty list of them")


def _resolve(sources: list[Any], workspace: "Workspace | None", validate: bool) -> tuple[list[dict], list[dict], "Workspace | None"]:
    """(definition sources, files) — each file: path (in the dataset), size, where it comes from."""
    defs: list[dict] = []
    files: list[dict] = []
    for index, source in enumerate(sources):
        if isinstance(source, DataReference):
            source = (source.datastore, source.path_on_datastore)
        if isinstance(source, tuple):
            store, pattern = source
            if not isinstance(store, Datastore):
                raise ValidationError(f"path[{index}]: a pair must be (datastore, 'path'), got {type(store).__name__}")
            workspace = workspace or store.workspace
            pattern = clean_path(pattern, f"path[{index}]")
            found = _match_store(store, pattern)
            single = len(found) == 1 and not _GLOB.search(pattern) and next(iter(found)) == pattern
            defs.append({"kind": "datastore", "datastore": store.name, "path": pattern, "file": single})
            base = _base(pattern, single)
            for key, remote in sorted(found.items()):
                files.append({"path": _rel(key, base), "size": remote.size, "source": index, "key": key,
                              **({"tag": remote.tag} if remote.tag else {})})
        elif isinstance(source, (str, os.PathLike)) and str(source).startswith(("http://", "https://")):
            url = str(source)
            defs.append({"kind": "http", "url": url, "file": True})
            name = posixpath.basename(urllib.parse.urlparse(url).path) or "index"
            files.append({"path": name, "size": None, "source": index, "key": url})
        elif isinstance(source, (str, os.PathLike)):
            text = os.path.abspath(os.path.expanduser(os.fspath(source)))
            defs.append({"kind": "local", "path": text, "file": os.path.isfile(text)})
            for full, rel in _match_local(text):
                files.append({"path": rel, "size": os.path.getsize(full), "source": index, "key": full})
        else:
            raise ValidationError(f"path[{index}] is a {type(source).__name__}: give a path, a URL or (datastore, path)")
        if validate and not any(f["source"] == index for f in files):
            raise NotFound(f"path[{index}] {_describe_source(defs[-1])} matches no file")
    seen: dict[str, dict] = {}
    for f in files:
        if f["path"] in seen:
            raise ValidationError(f"two sources give the file {f['path']!r} ({_describe_source(defs[seen[f['path']]['source']])}"
                                  f" and {_describe_source(defs[f['source']])}); a dataset's paths must be unique")
        seen[f["path"]] = f
    return defs, files, workspace


def _describe_source(d: Mapping[str, Any]) -> str:
    return {"datastore": lambda: f"{d['datastore']}:{d['path'] or '/'}", "http": lambda: d["url"],
            "local": lambda: d["path"]}[d["kind"]]()


def _base(pattern: str, single: bool) -> str:
    """The folder a pattern's matches are relative to: the part before the first wildcard (a file: its folder)."""
    if single:
        return posixpath.dirname(pattern)
    parts = pattern.split("/")
    fixed = []
    for p in parts:
        if _GLOB.search(p):
            break
        fixed.append(p)
    if len(fixed) == len(parts):  # a folder
        return pattern
    return "/".join(fixed)


def _rel(key: str, base: str) -> str:
    return key[len(base):].lstrip("/") if base and key.startswith(base) else key


def _match_store(store: Datastore, pattern: str) -> dict:
    if not _GLOB.search(pattern):
        return store.files.list(pattern)
    fixed = _base(pattern, False)
    return {k: r for k, r in store.files.list(fixed).items() if fnmatch.fnmatchcase(k, pattern)
            or (pattern.endswith("/**") and k.startswith(pattern[:-3]))}


def _match_local(text: str) -> list[tuple[str, str]]:
    import glob

    if _GLOB.search(text):
        base = _base(text.replace(os.sep, "/"), False)
        found = [p for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
        return [(p, os.path.relpath(p, base).replace(os.sep, "/")) for p in sorted(found)]
    if os.path.isfile(text):
        return [(text, os.path.basename(text))]
    out = []
    for folder, dirs, names in os.walk(text):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(folder, name)
            out.append((full, os.path.relpath(full, text).replace(os.sep, "/")))
    return out


# -- datasets ----------------------------------------------------------------------------------------------------
class Dataset:
    """A dataset version (``name``/``version`` once registered). Make one with ``Dataset.File.from_files`` or
    ``Dataset.Tabular.from_delimited_files``; look one up with ``Dataset.get_by_name``."""

    _type = "file"

    def __init__(self, definition: dict[str, Any], files: list[dict], workspace: "Workspace | None" = None,
                 record: "DatasetRecord | None" = None) -> None:
        self._definition = definition
        self._files = files
        self._workspace = workspace
        self._record = record

    # -- lookup ----------------------------------------------------------------------------------------------
    @staticmethod
    def _of(workspace: "Workspace", record: "DatasetRecord") -> "Dataset":
        cls = TabularDataset if record.type == "tabular" else FileDataset
        return cls(record.definition, record.files, workspace, record)

    @staticmethod
    def get_by_name(workspace: "Workspace", name: str, version: int | str = "latest") -> "Dataset":
        """A registered dataset: its latest version, or ``version``; NotFound lists the close names / versions."""
        if version in (None, "latest"):
            number = None
        else:
            try:
                number = int(version)
            except (TypeError, ValueError):
                raise ValidationError(f"version must be a number or 'latest', got {version!r}") from None
        return Dataset._of(workspace, workspace.metadata.get_dataset(name, number))

    @staticmethod
    def get_by_id(workspace: "Workspace", id: str) -> "Dataset":  # noqa: A002 - Azure's argument name
        return Dataset._of(workspace, workspace.metadata.get_dataset_by_id(id))

    @staticmethod
    def get_all(workspace: "Workspace") -> dict[str, "Dataset"]:
        """The latest version of each registered dataset, by name."""
        return {r.name: Dataset._of(workspace, r) for r in workspace.metadata.list_datasets()}

    @staticmethod
    def list(workspace: "Workspace") -> list["Dataset"]:
        return [Dataset._of(workspace, r) for r in workspace.metadata.list_datasets()]

    def versions(self) -> list["Dataset"]:
        """Every version of this dataset's name, newest first."""
        ws = self._require_saved("list its versions")
        return [Dataset._of(ws, r) for r in ws.metadata.list_datasets(self.name)]

    # -- what it is ------------------------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        return self._record.id if self._record else None

    @property
    def name(self) -> str | None:
        return self._record.name if self._record else None

    @property
    def version(self) -> int | None:
        return self._record.version if self._record else None

    @property
    def description(self) -> str | None:
        return self._record.description if self._record else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._record.tags) if self._record else {}

    @property
    def files(self) -> list[dict[str, Any]]:
        """The files with their sizes and hashes, as recorded (a saved version never changes)."""
        return [dict(f) for f in self._files]

    @property
    def total_bytes(self) -> int:
        return sum(f.get("size") or 0 for f in self._files)

    @property
    def workspace(self) -> "Workspace | None":
        return self._workspace

    def __repr__(self) -> str:
        what = f"name={self.name!r}, version={self.version}" if self.name else f"id={self.id!r}" if self.id else "unsaved"
        sources = ", ".join(_describe_source(s) for s in self._definition["sources"])
        return f"{type(self).__name__}({what}, files={len(self._files)}, sources=[{sources}])"

    # -- saving ----------------------------------------------------------------------------------------------
    def register(self, workspace: "Workspace", name: str, description: str | None = None,
                 tags: Mapping[str, Any] | None = None, create_new_version: bool = False) -> "Dataset":
        """Register as ``name``: version 1, or the next version with ``create_new_version=True``. Registering the
        same files again returns the existing version. The files' hashes are taken now; local files are kept."""
        name = validation.key(name, "dataset name")
        record = self._saved_record(workspace, description=description, tags=tags)
        saved = workspace.metadata.save_dataset(record, name=name, create_new_version=create_new_version)
        return Dataset._of(workspace, saved)

    def _saved_record(self, workspace: "Workspace", description: str | None = None,
                      tags: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The record of this dataset with every file's hash (local files put in the content store)."""
        if self._record is not None and all("sha256" in f or "tag" in f for f in self._files):
            files = [dict(f) for f in self._files]
        else:
            files = _fingerprint(workspace, self._definition, self._files)
        clean_tags = {validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in (tags or {}).items()}
        return {"type": self._type, "description": description, "tags": clean_tags, "definition": self._definition,
                "files": files}

    def _require_saved(self, what: str) -> "Workspace":
        if self._record is None or self._workspace is None:
            raise ValidationError(f"register the dataset first (dataset.register(ws, name)) to {what}")
        return self._workspace

    def add_tags(self, tags: Mapping[str, Any]) -> "Dataset":
        ws = self._require_saved("tag it")
        self._record = ws.metadata.update_dataset(self.id, tags={**self.tags, **{
            validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in tags.items()}})
        return self

    def remove_tags(self, keys: Iterable[str]) -> "Dataset":
        ws = self._require_saved("untag it")
        drop = set(keys)
        self._record = ws.metadata.update_dataset(self.id, tags={k: v for k, v in self.tags.items() if k not in drop})
        return self

    def update(self, description: str | None = None, tags: Mapping[str, Any] | None = None) -> "Dataset":
        ws = self._require_saved("update it")
        self._record = ws.metadata.update_dataset(self.id, description=description,
                                                  tags=dict(tags) if tags is not None else None)
        return self

    # -- lineage ---------------------------------------------------------------------------------------------
    def runs(self) -> list[Any]:
        """The runs that consumed this version."""
        from runyard.run import Run

        ws = self._require_saved("find its runs")
        seen: list[str] = []
        for item in ws.metadata.list_dataset_consumers([self.id]):
            if item.run_id not in seen:
                seen.append(item.run_id)
        return [Run._by_id(ws, run_id) for run_id in seen]

    def models(self) -> list[Any]:
        """The models registered from runs that consumed this version, or registered naming it."""
        from runyard.model import Model

        ws = self._require_saved("find its models")
        run_ids = {r.id for r in self.runs()}
        ref, out = f"{self.name}:{self.version}", []
        for record in ws.metadata.list_models(limit=1_000_000):
            named = any(ref in refs or self.id in refs for refs in (record.details.get("datasets") or {}).values())
            if record.run_id in run_ids or named:
                out.append(Model(ws, _record=record))
        return out

    # -- consumption -----------------------------------------------------------------------------------------
    def as_named_input(self, name: str) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(name, self, "direct" if self._type == "tabular" else "mount")


class FileDataset(Dataset):
    """Files, consumed as a folder (``as_mount``/``as_download``) or fetched with ``download``/``mount``."""

    _type = "file"

    def to_path(self) -> list[str]:
        """The files' paths as a run sees them under its mount point (Azure's form: each starts with '/')."""
        return ["/" + f["path"] for f in self._files]

    def download(self, target_path: str | os.PathLike | None = None, overwrite: bool = False) -> list[str]:
        """Copy the files into ``target_path`` (default: a new temporary folder); returns their paths. An existing
        file is an error unless ``overwrite``."""
        import tempfile

        ws = self._workspace_for("download it")
        target = Path(target_path).expanduser().absolute() if target_path is not None else Path(tempfile.mkdtemp())
        record = self._record_or_saved(ws)
        if not overwrite:
            clash = [f["path"] for f in record.files if (target / f["path"]).exists()]
            if clash:
                raise ValidationError(f"{len(clash)} file(s) exist in {target} already (e.g. {clash[0]}); pass "
                                      "overwrite=True to replace them")
        materialize(ws, record, target, link=False)
        return [str(target / f["path"]) for f in record.files]

    @contextmanager
    def mount(self, mount_point: str | os.PathLike | None = None):
        """``with dataset.mount() as ctx: ctx.mount_point`` — a read-only view of the files (cached on this
        machine; no FUSE: the files are linked or downloaded into the workspace's cache)."""
        ws = self._workspace_for("mount it")
        path = mounted(ws, self._record_or_saved(ws))
        if mount_point is None:
            yield _MountContext(str(path))
            return
        link = Path(mount_point).expanduser().absolute()
        if link.exists() or link.is_symlink():
            raise ValidationError(f"mount point {link} exists already")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path, target_is_directory=True)
        try:
            yield _MountContext(str(link))
        finally:
            link.unlink(missing_ok=True)

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(_default_input_name(self), self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(_default_input_name(self), self, "download", path_on_compute)

    def _workspace_for(self, what: str) -> "Workspace":
        if self._workspace is None:
            raise ValidationError(f"this dataset has no workspace: register it (dataset.register(ws, name)) to {what}")
        return self._workspace

    def _record_or_saved(self, ws: "Workspace") -> "DatasetRecord":
        if self._record is not None:
            return self._record
        from runyard.store.metadata.entities import DatasetRecord

        record = self._saved_record(ws)
        return DatasetRecord(anonymous_id(record), None, None, record["type"], None, {}, record["definition"],
                             record["files"], time.time())


class TabularDataset(Dataset):
    """Delimited, Parquet or JSON-lines files read as one table."""

    _type = "tabular"

    def to_pandas_dataframe(self):
        pd = _pandas()

        ws = self._workspace
        options = self._definition.get("tabular") or {}
        frames = []
        for f in self._files:
            with _open_file(ws, self._definition, f) as handle:
                frames.append(_read_table(handle, options))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        limit = options.get("take")
        return frame.head(limit) if limit is not None else frame

    def take(self, count: int) -> "TabularDataset":
        """The first ``count`` rows (an unsaved dataset over the same files)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValidationError(f"count must be a whole number >= 0, got {count!r}")
        definition = {**self._definition, "tabular": {**(self._definition.get("tabular") or {}), "take": count}}
        return TabularDataset(definition, [dict(f) for f in self._files], self._workspace)

    def to_path(self) -> list[str]:
        return ["/" + f["path"] for f in self._files]


class _MountContext:
    def __init__(self, mount_point: str) -> None:
        self.mount_point = mount_point

    def start(self) -> None:  # Azure's MountContext form: mounting happened when it was made
        pass

    def stop(self) -> None:
        pass


class DatasetConsumptionConfig:
    """How a run consumes a dataset: ``dataset.as_named_input("mnist").as_mount()`` (or ``.as_download()``);
    a tabular dataset is passed as is (``run.input_datasets["name"]`` in the script)."""

    def __init__(self, name: str, dataset: Dataset, mode: str = "mount", path_on_compute: str | None = None) -> None:
        self.name = input_name(name)
        self.dataset = dataset
        if mode not in ("mount", "download", "direct"):
            raise ValidationError(f"mode must be 'mount', 'download' or 'direct', got {mode!r}")
        if mode != "direct" and isinstance(dataset, TabularDataset):
            raise ValidationError("a tabular dataset is consumed as a table (run.input_datasets[name]."
                                  "to_pandas_dataframe()); use Dataset.File for files to mount or download")
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> "DatasetConsumptionConfig":
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    def to_input(self) -> dict[str, Any]:
        ds = self.dataset
        out: dict[str, Any] = {"name": self.name, "mode": self.mode, "path_on_compute": self.path_on_compute,
                               "dataset_id": ds.id}
        if ds.id is None:  # saved (unnamed) at submission, with its files' hashes
            out["dataset"] = {"type": ds._type, "definition": ds._definition, "files": ds._files}
        return out

    def __str__(self) -> str:
        from runyard.data.datastore import data_env_var

        return "${" + data_env_var(self.name) + "}"

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r}, dataset={self.dataset!r})"


def _default_input_name(dataset: Dataset) -> str:
    if dataset.name:
        return dataset.name
    digest = hashlib.sha256(json.dumps([dataset._definition, dataset._files], sort_keys=True, default=str).encode())
    return f"input_{digest.hexdigest()[:8]}"


class _FileFactory:
    @staticmethod
    def from_files(path: Any, validate: bool = True, workspace: "Workspace | None" = None) -> FileDataset:
        """Files from datastores ``(ds, "mnist/*.gz")``, local paths or globs, and ``https://`` URLs."""
        defs, files, ws = _resolve(_sources(path), workspace, validate)
        return FileDataset({"sources": defs}, files, ws)


class _TabularFactory:
    @staticmethod
    def from_delimited_files(path: Any, separator: str = ",", header: bool = True, infer_column_types: bool = True,
                             encoding: str = "utf8", validate: bool = True,
                             workspace: "Workspace | None" = None) -> TabularDataset:
        return _tabular(path, {"format": "delimited", "separator": separator, "header": bool(header),
                               "infer_column_types": bool(infer_column_types), "encoding": encoding}, validate, workspace)

    @staticmethod
    def from_parquet_files(path: Any, validate: bool = True, workspace: "Workspace | None" = None) -> TabularDataset:
        return _tabular(path, {"format": "parquet"}, validate, workspace)

    @staticmethod
    def from_json_lines_files(path: Any, encoding: str = "utf8", validate: bool = True,
                              workspace: "Workspace | None" = None) -> TabularDataset:
        return _tabular(path, {"format": "json_lines", "encoding": encoding}, validate, workspace)


def _tabular(path: Any, options: dict[str, Any], validate: bool, workspace: "Workspace | None") -> TabularDataset:
    defs, files, ws = _resolve(_sources(path), workspace, validate)
    dataset = TabularDataset({"sources": defs, "tabular": options}, files, ws)
    if validate and files:  # the first rows of the first file parse
        try:
            with _open_file(ws, dataset._definition, files[0]) as handle:
                _read_table(handle, options, rows=5)
        except (DataError, NotFound):
            raise
        except Exception as exc:  # noqa: BLE001 - a parse error named with its file
            raise ValidationError(f"cannot read {files[0]['path']} as {options['format']}: {exc}") from None
    return dataset


def _pandas():
    try:
        import pandas
    except ImportError:
        raise DataError("tabular datasets need pandas (and pyarrow for Parquet): pip install 'runyard[tabular]'") from None
    return pandas


def _read_table(handle, options: Mapping[str, Any], rows: int | None = None):
    pd = _pandas()

    fmt = options.get("format")
    if fmt == "parquet":
        frame = pd.read_parquet(handle)
        return frame.head(rows) if rows is not None else frame
    if fmt == "json_lines":
        return pd.read_json(handle, lines=True, encoding=options.get("encoding", "utf8"), nrows=rows)
    return pd.read_csv(handle, sep=options.get("separator", ","), header=0 if options.get("header", True) else None,
                       encoding=options.get("encoding", "utf8"), nrows=rows,
                       dtype=None if options.get("infer_column_types", True) else str)


Dataset.File = _FileFactory  # type: ignore[attr-defined]
Dataset.Tabular = _TabularFactory  # type: ignore[attr-defined]


# -- hashes, content, consumption ------------------------------------------------------------------------------
def anonymous_id(record: Mapping[str, Any]) -> str:
    """The id of an unregistered dataset a run consumed: its content's hash (the same data, the same id)."""
    body = json.dumps([record["type"], record["definition"], record["files"]], sort_keys=True, separators=(",", ":"))
    return "anon-" + hashlib.sha256(body.encode()).hexdigest()[:40]


def _fingerprint(workspace: "Workspace", definition: Mapping[str, Any], files: list[dict]) -> list[dict]:
    """Each file with its hash: local files hashed and put in the content store; remote ones by their tag."""
    from runyard.data.hashing import hash_cache_for

    cache = hash_cache_for(workspace.path)
    sources = definition["sources"]
    stores: dict[str, Datastore] = {}
    out = []
    for f in files:
        src = sources[f["source"]]
        entry = {k: v for k, v in f.items() if k not in ("sha256",)}
        local = _local_file(workspace, src, f, stores)
        if local is not None:
            try:
                st = os.stat(local)
                sha = cache.digests(local, st)["sha256"]
            except FileNotFoundError:
                raise DataError(f"{f['path']} ({local}) was removed since the dataset was defined") from None
            if not blobs.has(workspace.artifacts, sha):
                blobs.put(workspace.artifacts, sha, local)
            entry.update(size=st.st_size, sha256=sha, stored=True)
        elif src["kind"] == "http":
            size, sha = _http_fetch(f["key"], None)
            entry.update(size=size, sha256=sha)
        out.append(entry)
    cache.save()
    return out


def _local_file(workspace: "Workspace", src: Mapping[str, Any], f: Mapping[str, Any],
                stores: dict[str, Datastore]) -> str | None:
    if src["kind"] == "local":
        return f["key"]
    if src["kind"] == "datastore":
        store = stores.get(src["datastore"]) or stores.setdefault(src["datastore"], Datastore.get(workspace, src["datastore"]))
        path = store.files.local_path(f["key"])
        return str(path) if path is not None else None
    return None


def _http_fetch(url: str, dest: str | None) -> tuple[int, str]:
    """Download ``url`` (into ``dest``, or only to hash it): (size, sha256)."""
    import urllib.error
    import urllib.request

    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310 - http(s) checked by caller
            out = open(dest, "wb") if dest else None
            try:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                    if out:
                        out.write(chunk)
            finally:
                if out:
                    out.close()
    except urllib.error.HTTPError as exc:
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None
    return size, digest.hexdigest()


@contextmanager
def _open_file(workspace: "Workspace | None", definition: Mapping[str, Any], f: Mapping[str, Any]):
    """A binary handle on one file of a dataset: its stored content, the source, or a download."""
    src = definition["sources"][f["source"]]
    if f.get("stored") and workspace is not None:
        tmp = _scratch(workspace) / f"{f['sha256']}.read"
        blobs.get(workspace.artifacts, f["sha256"], str(tmp))
        try:
            with open(tmp, "rb") as handle:
                yield handle
        finally:
            tmp.unlink(missing_ok=True)
    elif src["kind"] == "local":
        with open(f["key"], "rb") as handle:
            yield handle
    elif src["kind"] == "http":
        import io
        import tempfile

        with tempfile.NamedTemporaryFile() as tmp:
            _http_fetch(f["key"], tmp.name)
            with open(tmp.name, "rb") as handle:
                yield io.BytesIO(handle.read())
    else:
        if workspace is None:
            raise ValidationError("this dataset's datastore needs its workspace")
        with Datastore.get(workspace, src["datastore"]).files.open(f["key"]) as handle:
            yield handle


def _scratch(workspace: "Workspace") -> Path:
    path = workspace.path / "cache" / "datasets" / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def materialize(workspace: "Workspace", record: "DatasetRecord", target: Path, link: bool,
                say=lambda line: None) -> None:
    """Write a dataset version's files into ``target``: stored content (hard-linked when ``link`` and the content
    store is on this machine, else copied), remote datastore files (checked against the recorded tags first) and
    URLs (checked against the recorded SHA-256)."""
    from runyard.data.hashing import hash_cache_for
    from runyard.data.transfer import download

    target.mkdir(parents=True, exist_ok=True)
    artifacts = workspace.artifacts
    by_store: dict[int, list[dict]] = {}
    what = f"dataset {record.name}:{record.version}" if record.name else f"dataset {record.id}"
    for f in record.files:
        dest = target / f["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = record.definition["sources"][f["source"]]
        if f.get("stored"):
            if dest.exists():
                dest.unlink()
            path = blobs.local_path(artifacts, f["sha256"]) if link else None
            if path is not None:
                try:
                    os.chmod(path, 0o444)  # content-addressed: never written again
                    os.link(path, dest)
                    continue
                except OSError:
                    pass
            blobs.get(artifacts, f["sha256"], str(dest))
        elif src["kind"] == "http":
            size, sha = _http_fetch(f["key"], str(dest))
            if f.get("sha256") and sha != f["sha256"]:
                dest.unlink(missing_ok=True)
                raise DataError(f"{what}: {f['key']} has changed since the dataset was saved (sha256 {sha[:12]}…, "
                                f"recorded {f['sha256'][:12]}…); register a new version to use the new content")
        else:
            by_store.setdefault(f["source"], []).append(f)
    for index, wanted in by_store.items():
        src = record.definition["sources"][index]
        store = Datastore.get(workspace, src["datastore"])
        listing = store.files.list(_base(src["path"], len(wanted) == 1 and wanted[0]["key"] == src["path"]))
        changed = []
        for f in wanted:
            now = listing.get(f["key"])
            if now is None:
                changed.append(f"{f['key']} (removed)")
            elif now.size != f["size"] or (f.get("tag") and now.tag and now.tag != f["tag"]):
                changed.append(f"{f['key']} (size {now.size}, tag {now.tag}; recorded size {f['size']}, tag {f.get('tag')})")
        if changed:
            raise DataError(f"{what}: {len(changed)} file(s) in {store.files.label} changed since the dataset was "
                            f"saved: {', '.join(changed[:5])} — register a new version to use the new content")
        for f in wanted:  # one transfer per file keeps each at its dataset path
            download(store.files, f["key"], (target / f["path"]).parent, True, hash_cache_for(workspace.path),
                     show_progress=False, listing={f["key"]: listing[f["key"]]}, strip=posixpath.dirname(f["key"]))
        say(f"{what}: {len(wanted)} file(s) from {store.files.label}")


def mounted(workspace: "Workspace", record: "DatasetRecord", say=lambda line: None) -> Path:
    """A read-only folder with the version's files in the workspace's cache, made once and shared by runs."""
    root = workspace.path / "cache" / "datasets" / record.id
    done = root.with_name(f"{record.id}.complete")
    if done.exists() and root.is_dir():
        return root
    tmp = root.with_name(f"{record.id}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    materialize(workspace, record, tmp, link=True, say=say)
    read_only(tmp)
    try:
        os.rename(tmp, root)
    except OSError:  # another run made it first
        shutil.rmtree(tmp, ignore_errors=True)
    done.write_text(str(time.time()))
    return root


def read_only(path: Path) -> None:
    """Take the write bits off a file, or off every file under a folder (what a mount gives a run)."""
    targets = [path] if path.is_file() else [Path(f, n) for f, _, names in os.walk(path) for n in names]
    for p in targets:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o222:
            os.chmod(p, mode & ~0o222)


def single_file(record_or_definition: Any) -> str | None:
    """The one file's path when the dataset is one file given by its path (a run gets the file, not a folder)."""
    definition = getattr(record_or_definition, "definition", record_or_definition)
    files = getattr(record_or_definition, "files", None)
    sources = definition["sources"]
    if len(sources) == 1 and sources[0].get("file") and (files is None or len(files) == 1):
        return files[0]["path"] if files else None
    return None


__all__ = ["Dataset", "DatasetConsumptionConfig", "FileDataset", "TabularDataset", "anonymous_id", "materialize",
           "mounted", "read_only", "single_file"]


plugins.register(plugins.FEATURES, "Dataset", Dataset)  # Workspace.datasets, Run.input_datasets, model lineage
