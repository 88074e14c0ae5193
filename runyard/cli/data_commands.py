"""``runyard datastore`` and ``runyard dataset``: where data lives, and the versioned datasets made from it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import (
    app,
    console,
    current_workspace,
    friendly,
    parse_tags,
    when,
)

datastore_app = typer.Typer(help="Datastores: list, show, upload, download.", no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets: list, show, register, download.", no_args_is_help=True)
app.add_typer(datastore_app, name="datastore")
app.add_typer(dataset_app, name="dataset")


def _store(ws, name: Optional[str]):
    from runyard.data import Datastore

    return Datastore.get(ws, name) if name else Datastore.get_default(ws)


@datastore_app.command("list")
@friendly
def datastore_list() -> None:
    """Registered datastores (secrets never shown)."""
    from runyard.data import Datastore

    table = Table("name", "type", "where", "credentials", "default")
    for ds in Datastore.list(current_workspace()):
        table.add_row(ds.name, ds.datastore_type, ds.files_uri() + (f" at {ds.endpoint}" if ds.endpoint and
                      ds.datastore_type != "Local" else ""), ds.credential_type if ds.datastore_type != "Local" else "",
                      "yes" if ds.is_default else "")
    console.print(table)


@datastore_app.command("show")
@friendly
def datastore_show(name: Optional[str] = typer.Argument(None, help="Datastore (default: the default one)."),
                   prefix: Optional[str] = typer.Option(None, "--prefix", help="List the files under this path."),
                   limit: int = typer.Option(50, "-n", min=1, help="How many files to list.")) -> None:
    """A datastore's registration (secrets as ***), and its files with --prefix."""
    ds = _store(current_workspace(), name)
    console.print_json(json.dumps(ds.describe()))
    if prefix is not None:
        files = ds.list_files(prefix)
        table = Table("path", "bytes")
        for path, size in list(files.items())[:limit]:
            table.add_row(path, f"{size:,}")
        console.print(table)
        console.print(f"{len(files)} file(s), {sum(files.values()) / 1e6:,.2f} MB")


@datastore_app.command("upload")
@friendly
def datastore_upload(src: Path = typer.Argument(..., help="A folder (or a file) to upload."),
                     target_path: Optional[str] = typer.Option(None, "--target-path", "-t", help="Folder in the store."),
                     name: Optional[str] = typer.Option(None, "--datastore", "-d", help="Default: the default one."),
                     overwrite: bool = typer.Option(False, "--overwrite", help="Replace files that differ.")) -> None:
    """Upload in parallel; files already there with the same content are skipped."""
    ds = _store(current_workspace(), name)
    if src.is_file():
        ds.upload_files([str(src)], target_path=target_path, overwrite=overwrite, show_progress=True)
    else:
        ds.upload(str(src), target_path=target_path, overwrite=overwrite, show_progress=True)


@datastore_app.command("download")
@friendly
def datastore_download(target: Path = typer.Argument(..., help="Local folder."),
                       prefix: Optional[str] = typer.Option(None, "--prefix", help="Only files under this path."),
                       name: Optional[str] = typer.Option(None, "--datastore", "-d", help="Default: the default one."),
                       overwrite: bool = typer.Option(False, "--overwrite", help="Replace local files that differ.")) -> None:
    """Download in parallel, keeping the files' paths."""
    _store(current_workspace(), name).download(str(target), prefix=prefix, overwrite=overwrite, show_progress=True)


def _dataset(ws, ref: str):
    from runyard.data import Dataset

    name, _, version = ref.partition(":")
    return Dataset.get_by_name(ws, name, version=version or "latest")


@dataset_app.command("list")
@friendly
def dataset_list(name: Optional[str] = typer.Option(None, "--name", help="Every version of this dataset.")) -> None:
    """Registered datasets: the latest version of each (or every version of --name)."""
    from runyard.data import Dataset

    ws = current_workspace()
    table = Table("dataset", "version", "type", "files", "size", "registered", "description", "tags")
    for d in (Dataset.get_by_name(ws, name).versions() if name else Dataset.list(ws)):
        table.add_row(d.name, str(d.version), d._type, str(len(d.files)), f"{d.total_bytes / 1e6:,.2f} MB",
                      when(d._record.created_at), d.description or "", ", ".join(f"{k}={v}" for k, v in d.tags.items()))
    console.print(table)


@dataset_app.command("show")
@friendly
def dataset_show(ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
                 limit: int = typer.Option(20, "-n", min=1, help="How many files to list.")) -> None:
    """A version: its sources, files (with hashes) and lineage (runs that consumed it, models from them)."""
    d = _dataset(current_workspace(), ref)
    console.print(f"[bold]{d.name}:{d.version}[/] ({d._type}) id {d.id} — {d.description or 'no description'}")
    for source in d._definition["sources"]:
        console.print(f"  source: {json.dumps(source)}")
    table = Table("path", "bytes", "hash")
    for f in d.files[:limit]:
        table.add_row(f["path"], f"{f['size'] or 0:,}", (f.get("sha256") or f.get("tag") or "")[:16])
    console.print(table)
    console.print(f"{len(d.files)} file(s), {d.total_bytes / 1e6:,.2f} MB")
    runs = d.runs()
    console.print("runs: " + (", ".join(r.id for r in runs) or "none"))
    console.print("models: " + (", ".join(m.id for m in d.models()) or "none"))


@dataset_app.command("register")
@friendly
def dataset_register(name: str = typer.Argument(..., help="Dataset name."),
                     paths: list[str] = typer.Argument(..., help="Local paths/globs, https:// URLs, or DATASTORE:PATH."),
                     description: Optional[str] = typer.Option(None, "--description"),
                     tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable)."),
                     new_version: bool = typer.Option(True, "--new-version/--no-new-version",
                                                      help="Register as the next version when the name exists.")) -> None:
    """Register files as a new version of a dataset (hashes taken now; local files kept by content)."""
    from runyard.data import Dataset, Datastore

    ws = current_workspace()
    sources = []
    for p in paths:
        store, sep, rest = p.partition(":")
        if sep and not p.startswith(("http://", "https://")) and not Path(p).exists() and "/" not in store:
            sources.append((Datastore.get(ws, store), rest))
        else:
            sources.append(p)
    d = Dataset.File.from_files(sources).register(ws, name, description=description, tags=parse_tags(tag),
                                                  create_new_version=new_version)
    console.print(f"registered {d.name}:{d.version} ({len(d.files)} files, {d.total_bytes / 1e6:,.2f} MB)")


@dataset_app.command("download")
@friendly
def dataset_download(ref: str = typer.Argument(..., help="NAME or NAME:VERSION."),
                     target: Path = typer.Argument(..., help="Local folder."),
                     overwrite: bool = typer.Option(False, "--overwrite")) -> None:
    """Download a version's files."""
    files = _dataset(current_workspace(), ref).download(str(target), overwrite=overwrite)
    console.print(f"{len(files)} file(s) in {target}")
