"""``runyard tensorboard RUN [RUN…]``: TensorBoard over the runs' ``logs/`` folders, one named folder per run.

The runs' stored logs are downloaded into ``WORKSPACE/tensorboard/<key>/<run name>/`` (refreshed on each start, so
a running run's newer event files come along) and TensorBoard serves that folder on 127.0.0.1; the same set of runs
reuses its server while it is alive.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import ConfigError, NotFound

if TYPE_CHECKING:
    from runyard.workspace import Workspace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def collect(ws: "Workspace", run_ids: list[str], root: Path) -> list[str]:
    """Download each run's ``logs/`` (not runyard's captured output) into ``root/<run name>``; returns the names."""
    from runyard.run import Run

    names = []
    for run_id in run_ids:
        run = Run._by_id(ws, run_id)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", run.display_name)[:80] or run.id
        if name in names:
            name = f"{name}-{run.id[-8:]}"
        names.append(name)
        dest = root / name
        dest.mkdir(parents=True, exist_ok=True)
        for artifact in ws.metadata.list_artifacts(run.id, "logs"):
            rel = artifact.path[len("logs/"):]
            if rel.startswith(("runyard/", "user_log_", "azureml-logs/")):
                continue
            target = dest / rel
            if target.exists() and target.stat().st_size == artifact.size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            ws.artifacts.get_file(run.id, artifact.path, str(target))
    return names


def _folder(ws: "Workspace", run_ids: list[str], base: Path | None) -> Path:
    """Where a set of runs' TensorBoard keeps its logs and state: ``base`` (default: the workspace's
    ``tensorboard/``) / a key of the run ids."""
    key = hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:12]
    return (base or ws.path / "tensorboard") / key


def start(ws: "Workspace", run_ids: list[str], port: int | None = None, wait: float = 30.0,
          base: Path | None = None) -> dict[str, Any]:
    """Start (or reuse) TensorBoard for these runs; returns its url, log folder and pid."""
    if not run_ids:
        raise ConfigError("name at least one run")
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("TensorBoard is not installed: pip install 'runyard[ui]' (or tensorboard)")
    root = _folder(ws, run_ids, base)
    names = collect(ws, run_ids, root / "logs")
    state_file = root / "server.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if _alive(state["pid"]):
            return {**state, "runs": names, "reused": True}
    if port is not None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            pass
        else:
            raise ConfigError(f"port {port} is in use on 127.0.0.1: give TensorBoard another (port=...)")
    port = port or _free_port()
    log = open(root / "tensorboard.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "runyard.ui.tensorboard_server", "--logdir", str(root / "logs"),
                             "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "5"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (root / "tensorboard.log").read_text(errors="replace")[-2000:]
            raise NotFound(f"TensorBoard exited with {proc.returncode}:\n{tail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.2)
    state = {"url": f"http://127.0.0.1:{port}/", "logdir": str(root / "logs"), "pid": proc.pid}
    state_file.write_text(json.dumps(state))
    return {**state, "runs": names, "reused": False}


def stop(ws: "Workspace", run_ids: list[str], base: Path | None = None) -> bool:
    state_file = _folder(ws, run_ids, base) / "server.json"
    if not state_file.exists():
        return False
    pid = json.loads(state_file.read_text())["pid"]
    if _alive(pid):
        os.kill(pid, 15)
    state_file.unlink()
    return True


__all__ = ["collect", "start", "stop"]
