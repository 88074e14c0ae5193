"""The cache of built environments: listing them with their sizes, and pruning (never one in use)."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from runyard.environments.planning import LAST_USED, MARKER


@dataclass(frozen=True)
class CachedEnvironment:
    key: str
    name: str
    path: Path
    python: str
    size: int
    created_at: float
    last_used: float
    packages: tuple[str, ...]


def cached(root: Path, with_size: bool = True) -> list[CachedEnvironment]:
    """The built environments in ``root``, least recently used first."""
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        if not path.is_dir() or not (path / MARKER).is_file():
            continue
        try:
            info = json.loads((path / MARKER).read_text(encoding="utf-8"))
            last = (path / LAST_USED).stat().st_mtime if (path / LAST_USED).exists() else info["created_at"]
        except (OSError, ValueError, KeyError):
            continue
        out.append(CachedEnvironment(path.name, info.get("name", "?"), path, info.get("python", "?"),
                                     _size(path) if with_size else 0, info["created_at"], last,
                                     tuple(info.get("packages") or ())))
    return sorted(out, key=lambda e: e.last_used)


def _size(path: Path) -> int:
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def in_use(path: Path) -> bool:
    """A live process runs this environment's interpreter."""
    import psutil

    prefix = str(path) + os.sep
    for proc in psutil.process_iter(["exe", "cmdline"]):
        try:
            exe = proc.info["exe"] or ""
            argv0 = (proc.info["cmdline"] or [""])[0]
        except (psutil.Error, IndexError):
            continue
        if exe.startswith(prefix) or argv0.startswith(prefix):
            return True
    return False


def prune(root: Path, keep_bytes: int | None = None, older_than_days: float | None = None,
          dry_run: bool = False) -> list[CachedEnvironment]:
    """Delete least-recently-used environments until the cache is at most ``keep_bytes`` (and every one unused
    for ``older_than_days``); environments in use or being built are kept. Returns what was (or would be) removed."""
    from filelock import FileLock, Timeout

    envs = cached(root)
    total = sum(e.size for e in envs)
    removed = []
    for env in envs:  # least recently used first
        too_old = older_than_days is not None and time.time() - env.last_used > older_than_days * 86400
        too_big = keep_bytes is not None and total > keep_bytes
        if not (too_old or too_big) or in_use(env.path):
            continue
        lock = FileLock(str(env.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            if not dry_run:
                shutil.rmtree(env.path, ignore_errors=True)
                Path(str(env.path) + ".lock").unlink(missing_ok=True)
        finally:
            lock.release()
        total -= env.size
        removed.append(env)
    return removed
