"""Artifact store: one interface over fsspec."""
from runyard.store.artifacts.api import ArtifactStore
from runyard.store.artifacts.fsspec_store import FsspecArtifactStore


def open_artifact_store(root: str) -> ArtifactStore:
    return FsspecArtifactStore(root)


__all__ = ["ArtifactStore", "FsspecArtifactStore", "open_artifact_store"]
