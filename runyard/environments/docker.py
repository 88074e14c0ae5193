"""Containers: the ``docker run`` that wraps one process of a run, and whether an engine answers."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any


def docker_argv(docker: dict[str, Any], argv: list[str], env_names: list[str], workdir: str,
                mounts: list[str], gpus: str | None = None) -> list[str]:
    """``docker run`` for one process: the run's folders mounted at the same paths, its variables passed by name,
    the host network (rendezvous addresses stay valid)."""
    cmd = ["docker", "run", "--rm", "--init", "--network", "host", "--workdir", workdir,
           "--user", f"{os.getuid()}:{os.getgid()}"]
    for path in dict.fromkeys([workdir, *mounts]):
        cmd += ["--volume", f"{path}:{path}"]
    for name in sorted(env_names):
        cmd += ["--env", name]
    if docker.get("shm_size"):
        cmd += ["--shm-size", docker["shm_size"]]
    if gpus:
        cmd += ["--gpus", f"device={gpus}"]
    return cmd + list(docker.get("arguments") or []) + [docker["image"], *argv]


def docker_engine_error() -> str | None:
    """None when a Docker engine answers; else what is wrong, for a clear error before anything runs."""
    docker = shutil.which("docker")
    if docker is None:
        return "the environment runs in a Docker container but there is no docker command on PATH"
    try:
        out = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                             timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the Docker engine does not answer ({exc})"
    if out.returncode != 0 or not out.stdout.strip():
        reason = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"the Docker engine does not answer: {reason}"
    return None
