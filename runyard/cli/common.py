"""What every CLI command module shares: the app, the console, the workspace a command works on, error
handling, and how values are shown. Command modules import this, never ``main`` (which imports them)."""
from __future__ import annotations

import functools
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from runyard.errors import ConfigError, RunyardError, ValidationError
from runyard.store.workspace_context import CONFIG_DIR, CONFIG_FILE

app = typer.Typer(help="runyard: ML training runs, their metrics and files.", no_args_is_help=True, add_completion=False)
runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
# Off a terminal (pipes, CI logs) rich would fold tables at 80 columns and cut run ids.
console = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)

STATUS_STYLE = {"Completed": "green", "Failed": "red", "Canceled": "yellow", "Running": "cyan"}
state: dict[str, Any] = {"workspace": None}


@app.callback()
def main(
    workspace: Optional[Path] = typer.Option(
        None, "--workspace", "-w",
        help="Workspace folder (default: $RUNYARD_WORKSPACE/$RUNYARD_TRACKING_URI, nearest .runyard/config.json, $RUNYARD_HOME, ~/.runyard).",
    ),
) -> None:
    state["workspace"] = workspace


def current_workspace():
    from runyard.workspace import Workspace

    folder = state["workspace"]
    # Like MLFLOW_TRACKING_URI for mlflow's CLI, the RUNYARD_* variables choose the workspace when -w is not given.
    if not folder:
        return Workspace.from_environment()
    path = Path(folder).expanduser().absolute()
    for candidate in (path, path / CONFIG_DIR):  # a workspace folder, or a project whose .runyard holds one
        if (candidate / CONFIG_FILE).is_file():
            return Workspace(candidate)
    raise ConfigError(f"no runyard workspace at {path} (no {CONFIG_FILE} there or in {CONFIG_DIR}/) — check the path, "
                      f"or create one with `runyard init {folder}`")


def friendly(fn):
    """Runyard errors become one red line and exit status 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RunyardError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)  # one line, never folded
            raise typer.Exit(1) from None

    return wrapper


def styled_status(value: str) -> str:
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def value_text(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:.6g}"
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def redact_url(url: str) -> str:
    from runyard.store.metadata.sql_store import redact

    return redact(url)


def model_ref(ws, ref: str):
    """NAME, NAME:VERSION or NAME@ALIAS → the Model."""
    from runyard.model import Model

    if "@" in ref:
        name, alias = ref.split("@", 1)
        return Model(ws, name, alias=alias)
    name, _, version = ref.partition(":")
    if version and not version.isdigit():
        raise ValidationError(f"{ref!r}: write NAME, NAME:VERSION (a number) or NAME@ALIAS")
    return Model(ws, name, version=int(version) if version else None)


def parse_tags(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"--tag {pair!r}: write KEY=VALUE")
        out[key] = value
    return out
