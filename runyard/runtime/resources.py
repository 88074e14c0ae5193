"""What this machine offers a run: its GPUs, and ports that are free now."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess


def gpu_ids() -> list[str]:
    """The GPUs this machine offers (CUDA_VISIBLE_DEVICES when set, else the indexes nvidia-smi lists)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("GPU ")]


def gpus_for_slot(gpus: list[str], slot: int, capacity: int) -> list[str]:
    """The GPUs a run in queue slot ``slot`` of ``capacity`` uses: every ``capacity``-th one from its slot on (one
    GPU per run when there are as many slots as GPUs, all of them when one run at a time)."""
    return [g for i, g in enumerate(gpus) if i % capacity == slot % capacity] or gpus


def free_ports(count: int, host: str = "127.0.0.1") -> tuple[int, ...]:
    """``count`` distinct ports free on ``host`` now (for rendezvous and task addresses of distributed jobs)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return tuple(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
