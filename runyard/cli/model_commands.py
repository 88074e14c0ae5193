"""``runyard models``: the model registry."""
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
    model_ref,
    parse_tags,
    when,
)
from runyard.errors import ValidationError

models_app = typer.Typer(help="The model registry: list, show, register, download, alias.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
@friendly
def models_list(name: Optional[str] = typer.Option(None, "--name", help="Only this model's versions."),
                tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE (repeatable): only models with it."),
                latest: bool = typer.Option(False, "--latest", help="Each model's newest version only."),
                limit: int = typer.Option(50, "-n", min=1, help="How many."), offset: int = typer.Option(0, "--offset", min=0)) -> None:
    """Registered model versions, newest first."""
    from runyard.model import Model

    table = Table("model", "version", "framework", "aliases", "run", "files", "registered", "tags")
    for m in Model.list(current_workspace(), name=name, tags=parse_tags(tag), latest=latest, limit=limit, offset=offset):
        size = sum(f["size"] for f in m.files)
        table.add_row(m.name, str(m.version), " ".join(filter(None, [m.model_framework, m.model_framework_version])),
                      ", ".join(m.aliases), m.run_id or "", f"{len(m.files)} ({size / 1e6:.2f} MB)",
                      when(m.created_time), ", ".join(f"{k}={v}" for k, v in m.tags.items()))
    console.print(table)


@models_app.command("show")
@friendly
def models_show(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS.")) -> None:
    """One model version as JSON: framework, tags, properties, lineage, files."""
    console.print_json(json.dumps(model_ref(current_workspace(), ref).serialize(), default=str))


@models_app.command("register")
@friendly
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

    ws = current_workspace()
    if (path is None) == (run_id is None):
        raise ValidationError("give --path (a local file or folder) or --run (a run's stored files)")
    options = dict(tags=parse_tags(tag), model_framework=framework, model_framework_version=framework_version,
                   description=description)
    model = (ws.get_run(run_id).register_model(name, run_path, **options) if run_id
             else Model.register(ws, path, name, **options))
    console.print(f"registered {model.id} ({len(model.files)} file(s))", highlight=False)


@models_app.command("download")
@friendly
def models_download(ref: str = typer.Argument(..., help="NAME, NAME:VERSION or NAME@ALIAS."),
                    output: Path = typer.Option(Path("."), "--output", "-o", help="Target folder."),
                    exist_ok: bool = typer.Option(False, "--exist-ok", help="Overwrite what is there.")) -> None:
    """Write a model version's files into a folder."""
    console.print(model_ref(current_workspace(), ref).download(output, exist_ok=exist_ok), highlight=False)


@models_app.command("alias")
@friendly
def models_alias(ref: str = typer.Argument(..., help="NAME:VERSION the alias points at."),
                 alias: str = typer.Argument(..., help="The alias, e.g. prod."),
                 remove: bool = typer.Option(False, "--remove", help="Remove the alias from NAME instead.")) -> None:
    """Point an alias at a version (it moves from the version it named before)."""
    ws = current_workspace()
    if remove:
        name = ref.split(":")[0].split("@")[0]
        ws.metadata.set_model_alias(name, alias, None)
        console.print(f"removed {name}@{alias}", highlight=False)
        return
    model = model_ref(ws, ref)
    model.set_alias(alias)
    console.print(f"{model.name}@{alias} → version {model.version}", highlight=False)

