"""``runyard env``: registered environments and the cache of built ones."""
from __future__ import annotations

import json
import queue
import re
import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from runyard.cli.common import (
    app,
    console,
    current_workspace,
    friendly,
    size_text,
    when,
)
from runyard.errors import ConfigError

# Options shared by `env register` and `env build` (what describes an environment on the command line).
_REQUIREMENTS = typer.Option(None, "--requirements", "-r", help="A requirements.txt.")
_CONDA_FILE = typer.Option(None, "--conda-file", help="A conda environment.yml.")
_PIP = typer.Option([], "--pip", help="A pip package (repeatable).")
_PYTHON = typer.Option(None, "--python", help="Python version, e.g. 3.11.")
_INHERIT = typer.Option(False, "--inherit-base-packages", help="Also see the current interpreter's packages.")

env_app = typer.Typer(help="Environments: register, build, list the cache, prune it.", no_args_is_help=True)
app.add_typer(env_app, name="env")


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text.upper())
    if not m:
        raise ConfigError(f"size {text!r} not understood — write e.g. 500MB or 5GB")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))


def environment_from_options(ws, ref: Optional[str], requirements: Optional[Path], conda_file: Optional[Path], pip: list[str],
                 python: Optional[str], inherit: bool):
    """An Environment from a registered NAME[:VERSION] or from files/packages given on the command line."""
    from runyard.config.environment import Environment

    if ref and not (requirements or conda_file or pip or python):
        name, _, version = ref.partition(":")
        return Environment.get(ws, name, version or None)
    name = ref or "cli"
    if conda_file:
        env = Environment.from_conda_specification(name, conda_file)
    elif requirements:
        env = Environment.from_pip_requirements(name, requirements)
    else:
        env = Environment(name)
    for package in pip:
        env.python.conda_dependencies.add_pip_package(package)
    if python:
        env.python.conda_dependencies.set_python_version(python)
    env.python.inherit_base_packages = inherit
    return env


@env_app.command("list")
@friendly
def env_list() -> None:
    """Registered environments, then the built ones in the cache (least recently used first) with their size."""
    from runyard.environments import cached, env_root

    ws = current_workspace()
    table = Table("name", "version", "kind", "python", "packages", "registered")
    for record in ws.metadata.list_environments():
        py = record.spec.get("python") or {}
        cd = py.get("conda_dependencies") or {}
        deps = cd.get("dependencies") or []
        pip = next((d["pip"] for d in deps if isinstance(d, dict)), [])
        count = len([d for d in deps if not isinstance(d, dict) and not str(d).startswith("python")]) + len(pip)
        kind = "user-managed" if py.get("user_managed_dependencies") else "built"
        version = next((str(d).split("=")[-1] for d in deps if str(d).startswith("python=")), "")
        table.add_row(record.name, str(record.version), kind, version, str(count), when(record.created_at))
    console.print(table)
    root = env_root(ws)
    envs = cached(root)
    cache = Table("key", "name", "python", "size", "packages", "last used", title=f"built environments in {root}")
    for env in envs:
        cache.add_row(env.key, env.name, env.python, size_text(env.size), str(len(env.packages)), when(env.last_used))
    console.print(cache)
    console.print(f"{len(envs)} built, {size_text(sum(e.size for e in envs))} in all")


@env_app.command("show")
@friendly
def env_show(ref: str = typer.Argument(..., help="NAME[:VERSION] of a registered environment, or a cache key.")) -> None:
    """An environment's definition, its key, and what is installed when it is built."""
    from runyard.environments import MARKER, cached, env_root, plan

    ws = current_workspace()
    root = env_root(ws)
    built = {e.key: e for e in cached(root, with_size=False)}
    if ref in built:
        info = json.loads((built[ref].path / MARKER).read_text(encoding="utf-8"))
        console.print_json(json.dumps(info))
        return
    env = environment_from_options(ws, ref, None, None, [], None, False)
    spec = env.to_spec()
    console.print_json(json.dumps(spec))
    p = plan(root, spec, tracking_uri=ws.tracking_uri)
    if p.key is None:
        console.print(f"user-managed: runs in {p.python} as it is")
    else:
        console.print(f"key {p.key}: " + (f"built in {p.path}" if p.ready else "not built yet (runyard env build)"))
        if p.ready and p.key in built:
            console.print("\n".join(built[p.key].packages), highlight=False)
        elif p.build.get("install"):  # what a build installs (a framework brings what Azure's image for it held)
            console.print("installs: " + " ".join(p.build["install"]), highlight=False, soft_wrap=True)
        if not (p.ready and p.key in built) and p.build.get("request", {}).get("horovod"):
            console.print(f"builds: horovod {p.build['request']['horovod']['version']} for the environment's "
                          "frameworks (compiled once; the wheel is reused)", highlight=False)


@env_app.command("register")
@friendly
def env_register(
    name: str = typer.Argument(..., help="Name to register under (a new version if it exists)."),
    requirements: Optional[Path] = _REQUIREMENTS,
    conda_file: Optional[Path] = _CONDA_FILE,
    pip: list[str] = _PIP,
    python: Optional[str] = _PYTHON,
    inherit: bool = _INHERIT,
) -> None:
    """Register an environment from a requirements file, a conda file or packages."""
    ws = current_workspace()
    env = environment_from_options(ws, name, requirements, conda_file, pip, python, inherit).register(ws)
    console.print(f"registered environment {env.name} version {env.version}")


@env_app.command("build")
@friendly
def env_build(
    ref: Optional[str] = typer.Argument(None, help="NAME[:VERSION] of a registered environment (or a name for the "
                                                   "environment the options describe)."),
    requirements: Optional[Path] = _REQUIREMENTS,
    conda_file: Optional[Path] = _CONDA_FILE,
    pip: list[str] = _PIP,
    python: Optional[str] = _PYTHON,
    inherit: bool = _INHERIT,
) -> None:
    """Build an environment into the cache now (runs that use it then start at once)."""
    from runyard.environments import ensure, env_root, plan
    from runyard.progress import show_build

    ws = current_workspace()
    env = environment_from_options(ws, ref, requirements, conda_file, pip, python, inherit)
    p = plan(env_root(ws), env.to_spec(), tracking_uri=ws.tracking_uri)
    if p.key is None:
        console.print(f"{env.name} is user-managed: nothing to build (it runs in {p.python})")
        return
    if p.ready:
        console.print(f"environment {p.name} ({p.key}) is built: {p.path}")
        return
    lines: queue.Queue = queue.Queue()
    outcome: list = []
    cancel = threading.Event()

    def build() -> None:
        try:
            ensure(p, lambda line: lines.put(line + "\n"), cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - reported below, in the main thread
            outcome.append(exc)
        lines.put(None)

    started = time.monotonic()
    builder = threading.Thread(target=build, daemon=True)
    builder.start()
    try:
        show_build(iter(lines.get, None))
    except KeyboardInterrupt:  # Ctrl-C: the build's commands are killed and its half-made folder removed
        cancel.set()
        builder.join(30)
        raise
    if outcome:
        raise outcome[0]
    console.print(f"built {p.name} ({p.key}) in {time.monotonic() - started:.1f} s: {p.path}")


@env_app.command("horovod")
@friendly
def env_horovod(
    python: Path = typer.Argument(..., help="The interpreter of the environment to build Horovod into (it must "
                                            "already have torch and/or tensorflow)."),
) -> None:
    """Build Horovod into an interpreter you manage, for the frameworks it holds (PyTorch, TensorFlow).

    Built environments need not: one that names horovod, or a framework estimator with MPI, gets it when built."""
    from runyard.config.package_index import pip_settings
    from runyard.environments import horovod
    from runyard.environments.builder import run_command, uv_binary

    if not python.exists():
        raise ConfigError(f"{python} does not exist: give the python of the environment to build Horovod into")

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    horovod.build(str(python), horovod.cache_dir(), uv_binary(), pip_settings().uv_args(), say,
                  lambda argv, env: run_command(argv, say, 3600, env))
    console.print(f"Horovod {horovod.VERSION} is built into {python}'s environment")


@env_app.command("prune")
@friendly
def env_prune(
    max_size: Optional[str] = typer.Option(None, "--max-size", help="Keep the cache under this size (e.g. 5GB); "
                                                                    "least recently used go first."),
    older_than: Optional[float] = typer.Option(None, "--older-than", help="Remove those unused for this many days."),
    everything: bool = typer.Option(False, "--all", help="Remove every built environment not in use."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
) -> None:
    """Remove built environments (never one in use or being built)."""
    from runyard.environments import env_root, prune

    if max_size is None and older_than is None and not everything:
        raise ConfigError("say what to prune: --max-size SIZE, --older-than DAYS or --all")
    removed = prune(env_root(current_workspace()), keep_bytes=0 if everything else (_parse_size(max_size) if max_size else None),
                    older_than_days=older_than, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for env in removed:
        console.print(f"{verb} {env.key} ({env.name}, {size_text(env.size)}, last used {when(env.last_used)})")
    console.print(f"{verb} {len(removed)} environment(s), {size_text(sum(e.size for e in removed))}")
