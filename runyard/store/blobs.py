"""The content-addressed blob store: each file's bytes stored once in the artifact store, named by their SHA-256.
Code snapshots, model versions and datasets all keep their files here (a file shared by all three is stored once)."""
from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from runyard.store.artifacts import ArtifactStore


def key(sha256: str) -> str:
    """Where the blob of ``sha256`` lives in the artifact store."""
    return f"snapshots/blobs/{sha256[:2]}/{sha256}"


def has(artifacts: "ArtifactStore", sha256: str) -> bool:
    return artifacts.has_object(key(sha256))


def put(artifacts: "ArtifactStore", sha256: str, source: str | BinaryIO) -> int:
    """Store the bytes of ``source`` (a local path or a stream) as the blob ``sha256``; returns their size."""
    return artifacts.put_object(key(sha256), source)


def get(artifacts: "ArtifactStore", sha256: str, dest: str) -> None:
    """Copy the blob ``sha256`` to the local file ``dest``."""
    artifacts.get_object(key(sha256), dest)


def local_path(artifacts: "ArtifactStore", sha256: str) -> str | None:
    """The blob's own file when the artifact store is a local folder (it can be hard-linked), else None."""
    if not getattr(artifacts, "local", False) or not hasattr(artifacts, "_object_path"):
        return None
    return artifacts._object_path(key(sha256))
