"""A Ray cluster that runyard starts and owns on this machine (``RayCompute.provisioning_configuration``).

Each node is one ``ray start --block`` process in its own session (its log in ``WORKSPACE/compute/<name>/``);
stopping the target sends it SIGTERM, on which Ray stops that node's processes. Nodes bind 127.0.0.1 where Ray
allows it; Ray itself still listens on every interface (see the README's network note).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compute.ray_jobs import RayJobs, with_ray_auth
from runyard.errors import ComputeError

if TYPE_CHECKING:
    from runyard.compute.ray_config import RayComputeConfiguration
    from runyard.store.workspace_context import WorkspaceContext

_START_TIMEOUT = 120.0


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise ComputeError("starting a Ray cluster needs Ray: pip install 'runyard[ray]' (ray[default])")
    return found


def _free_port() -> int:
    from runyard.runtime.resources import free_ports

    return free_ports(1)[0]


def _spawn(argv: list[str], log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # every node uses the token when one exists (runyard's REST calls send it too)
        env = with_ray_auth({**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
                             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    return proc.pid


def _node_argv(config: "RayComputeConfiguration") -> list[str]:
    cpus = config.cpus_per_node or os.cpu_count() or 1
    return ["--num-cpus", str(cpus), "--num-gpus", str(config.gpus_per_node), "--node-ip-address", "127.0.0.1",
            "--disable-usage-stats", "--block"]


def start_cluster(workspace: "WorkspaceContext", name: str, config: "RayComputeConfiguration", state: dict[str, Any],
                  show_output: bool = False) -> dict[str, Any]:
    """Start the head (unless it runs) and nodes up to ``max(min_nodes, 1)``; returns the target's new state."""

    if state.get("dashboard") and _alive(state.get("pids", [])):
        return add_nodes(workspace, name, config, state, max(config.min_nodes, 1))
    folder = workspace.path / "compute" / name
    gcs_port, dashboard_port = _free_port(), _free_port()
    # Ray's session folders hold Unix sockets, whose paths must stay short: a short folder per target.
    temp_dir = Path(tempfile.gettempdir()) / f"runyard-ray-{os.getpid()}-{int(time.time()) % 100000}"
    argv = [_ray_cli(), "start", "--head", "--port", str(gcs_port), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard_port), "--include-dashboard", "true", "--temp-dir", str(temp_dir),
            *_node_argv(config)]
    started = time.monotonic()
    pid = _spawn(argv, folder / "node0.log")
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    state = {"dashboard": dashboard, "gcs_address": f"127.0.0.1:{gcs_port}", "pids": [pid], "temp_dir": str(temp_dir),
             "python": sys.executable}
    _wait_for(lambda: _nodes(dashboard) >= 1, pid, folder / "node0.log", "the head node")
    if show_output:
        print(f"head node up at {dashboard} in {time.monotonic() - started:.1f} s")
    return add_nodes(workspace, name, config, state, max(config.min_nodes, 1), show_output)


def add_nodes(workspace: "WorkspaceContext", name: str, config: "RayComputeConfiguration", state: dict[str, Any],
              count: int, show_output: bool = False) -> dict[str, Any]:
    """Grow the cluster to ``count`` nodes (at most ``max_nodes``)."""
    count = min(count, config.max_nodes)
    pids = list(state.get("pids", []))
    if len(pids) >= count:
        return state
    folder = workspace.path / "compute" / name
    for i in range(len(pids), count):
        started = time.monotonic()
        pid = _spawn([_ray_cli(), "start", "--address", state["gcs_address"], *_node_argv(config)],
                     folder / f"node{i}.log")
        pids.append(pid)
        _wait_for(lambda n=i + 1: _nodes(state["dashboard"]) >= n, pid, folder / f"node{i}.log", f"node {i}")
        if show_output:
            print(f"node {i} joined in {time.monotonic() - started:.1f} s")
    return {**state, "pids": pids}


def stop_cluster(state: dict[str, Any], grace: float = 20.0) -> None:
    """SIGTERM every node's ``ray start --block`` (workers first), SIGKILL their sessions after ``grace``."""
    pids = list(reversed(state.get("pids", [])))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pids):
        _reap(pids)
        time.sleep(0.2)
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 10.0  # SIGKILL lands at once, but a loaded machine may take a moment to run it
    _reap(pids)
    while time.monotonic() < deadline and any(_exists(p) for p in pids):
        time.sleep(0.05)
        _reap(pids)
    if state.get("temp_dir"):
        shutil.rmtree(state["temp_dir"], ignore_errors=True)


def _reap(pids: list[int]) -> None:
    """Collect the exit of nodes this process started (no zombies left behind)."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # started by another process (another CLI call): init reaps it
            pass


def _exists(pid: int) -> bool:
    """The process is there, running or a zombie not yet reaped."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _alive(pids: list[int]) -> bool:
    import psutil

    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False


def _nodes(dashboard: str) -> int:
    try:
        return len(RayJobs(dashboard, timeout=2).nodes())
    except Exception:  # noqa: BLE001 - not up yet
        return 0


def _wait_for(ready, pid: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready():
        if not _alive([pid]):
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            raise ComputeError(f"{what} of the Ray cluster did not start:\n" + "\n".join(tail))
        if time.monotonic() > deadline:
            raise ComputeError(f"{what} of the Ray cluster did not come up within {_START_TIMEOUT:g} s (see {log})")
        time.sleep(0.3)
