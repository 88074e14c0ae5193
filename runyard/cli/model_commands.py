"""``runyard models``: the model registry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.main import _friendly, _when, _ws, app, console
from runyard.errors import ValidationError

models_app = typer.Typer(help="The model registry: list, show, register, download, alias.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _ref(ws, ref: str):
    """NAME, NAME:VERSION or NAME@ALIAS → the Model."""
    from runyard.model import Model

    if "@" in ref:
        name, alias = ref.split("@", 1)
        return Model(ws, name, alias=alias)
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise ValidationError(f"{ref!r}: write NAME, NAME:VERSION (a number) or NAME@ALIAS")
    return Model(ws, name, version=int(version) if version else None)


def _tags(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"--tag {pair!r}: write KEY=VALUE")
        out[key] = value
    return out


@models_app.command("list")
@_friendly
def models_list(name: Optional[str] = typer.Option(None, "--name", help="Only this model's versions."),
                tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable): only models with it."),
                latest: bool = typer.Option(False, "--latest", help="Each model's newest version only."),
                limit: int = typer.Option(50, "-n", help="How many."), offset: int = typer.Option(0, "--offset")) -> None:
    """Registered model versions, newest first."""
    from runyard.model import Model

    table = Table("model", "version", "framework", "aliases", "run", "files", "registered", "tags")
    for m in Model.list(_ws(), name=name, tags=_tags(tag), latest=latest, limit=limit, offset=offset):
        size = sum(f["size"] for f in m.files)
        table.add_row(m.name, str(m.version), " ".join(filter(None, [m.model_framework, m.model_framework_version])),
                      ", ".join(m.aliases), m.run_id or "", f"{len(m.files)} ({size / 1e6:.2f} MB)",
                      _when(m.created_time), ", ".join(f"{k}={v}" for k, v in m.tags.items()))
    console.print(table)


@models_app.command("show")
@_friendly
def models_show(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS.")) -> None:
    """One model version as JSON: framework, tags, properties, lineage, files."""
    console.print_json(json.dumps(_ref(_ws(), ref).serialize(), default=str))


@models_app.command("register")
@_friendly
def models_register(
    name: str = typer.Argument(..., help="The model's name."),
    path: Optional[Path] = typer.Option(None, "--path", "-p", help="A local file or folder."),
    run_id: Optional[str] = typer.Option(None, "--run", help="Register a run's stored file or folder instead."),
    run_path: str = typer.Option("outputs", "--run-path", help="With --run: the file or folder in the run."),
    framework: Optional[str] = typer.Option(None, "--framework", help="ScikitLearn, TensorFlow, Keras, PyTorch, Onnx, Custom."),
    framework_version: Optional[str] = typer.Option(None, "--framework-version"),
    description: Optional[str] = typer.Option(None, "--description"),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable)."),
) -> None:
    """Register a local file/folder (--path) or a run's outputs (--run) as the next version of NAME."""
    from runyard.model import Model

    ws = _ws()
    if (path is None) == (run_id is None):
        raise ValidationError("give --path (a local file or folder) or --run (a run's stored files)")
    options = dict(tags=_tags(tag), model_framework=framework, model_framework_version=framework_version,
                   description=description)
    model = (ws.get_run(run_id).register_model(name, run_path, **options) if run_id
             else Model.register(ws, path, name, **options))
    console.print(f"registered {model.id} ({len(model.files)} file(s))", highlight=False)


@models_app.command("download")
@_friendly
def models_download(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
                    output: Path = typer.Option(Path("."), "--output", "-o", help="Target folder."),
                    exist_ok: bool = typer.Option(False, "--exist-ok", help="Overwrite what is there.")) -> None:
    """Write a model version's files into a folder."""
    console.print(_ref(_ws(), ref).download(output, exist_ok=exist_ok), highlight=False)


@models_app.command("alias")
@_friendly
def models_alias(ref: str = typer.Argument(..., help="NAME:VERSION the alias points at."),
                 alias: str = typer.Argument(..., help="The alias, e.g. prod."),
                 remove: bool = typer.Option(False, "--remove", help="Remove the alias from NAME instead.")) -> None:
    """Point an alias at a version (it moves from the version it named before)."""
    ws = _ws()
    if remove:
        name = ref.split(":")[0].split("@")[0]
        ws.metadata.set_model_alias(name, alias, None)
        console.print(f"removed {name}@{alias}", highlight=False)
        return
    model = _ref(ws, ref)
    model.set_alias(alias)
    console.print(f"{model.name}@{alias} → version {model.version}", highlight=False)

