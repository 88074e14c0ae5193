"""A run's stored files: written to the artifact store and indexed in the metadata store, in one step.

``Run.upload_files`` and the runtime (which uploads a run's outputs and logs without the public ``Run``) share it.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import ConfigError
from runyard.progress import track
from runyard.store.metadata.entities import ArtifactInfo

if TYPE_CHECKING:
    from runyard.store.workspace_context import WorkspaceContext


def put(workspace: "WorkspaceContext", run_id: str, items: Sequence[tuple[str, Any]],
        show_progress: bool | None = None) -> None:
    """Store (validated name, local path or binary stream) pairs; what was stored is indexed even when a later
    file fails."""
    def size(item: tuple[str, Any]) -> int:
        return os.path.getsize(item[1]) if isinstance(item[1], (str, os.PathLike)) else 0

    done: list[ArtifactInfo] = []
    try:
        for name, source in track(list(items), "uploading", show_progress, total_bytes=size):
            if isinstance(source, (str, os.PathLike)):
                stored = workspace.artifacts.put_file(run_id, name, os.fspath(source))
            else:
                stored = workspace.artifacts.put_stream(run_id, name, source)
            done.append(ArtifactInfo(name, stored, time.time()))
    finally:
        workspace.metadata.record_artifacts(run_id, done)


def folder_items(name: str, root: Path, skip_outside=None) -> list[tuple[str, Path]]:
    """Every file under the local folder ``root`` as (``name/<relative path>``, path); ``name=""``: the run's root.

    A symlink to a file inside ``root`` is stored with its target's content; one that leaves ``root`` is refused
    (ConfigError naming it) — or, with ``skip_outside(message)`` given (a run's outputs at its end), left out and
    reported there: a link must not carry files from elsewhere on the machine into the run."""
    prefix = name.strip("/") + "/" if name.strip("/") else ""
    real_root = os.path.realpath(root)
    items = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        if p.is_symlink() and leaves(p, real_root):
            message = (f"{p.relative_to(root).as_posix()} is a link to {os.path.realpath(p)}, outside {root}: not "
                       "stored (copy the file into the folder to keep it)")
            if skip_outside is None:
                raise ConfigError(message)
            skip_outside(message)
            continue
        items.append((f"{prefix}{p.relative_to(root).as_posix()}", p))
    return items


def leaves(link: str | os.PathLike, real_root: str) -> bool:
    """Whether the symlink ``link`` resolves to a place outside the folder whose real path is ``real_root``."""
    target = os.path.realpath(link)
    return target != real_root and not target.startswith(real_root.rstrip(os.sep) + os.sep)


def download(workspace: "WorkspaceContext", run_id: str, prefix: str, dest: Path) -> int:
    """Copy the run's stored files under ``prefix`` into ``dest``, keeping their paths; returns how many."""
    found = workspace.metadata.list_artifacts(run_id, prefix)
    for artifact in found:
        target = dest / artifact.path
        target.parent.mkdir(parents=True, exist_ok=True)
        workspace.artifacts.get_file(run_id, artifact.path, str(target))
    return len(found)
