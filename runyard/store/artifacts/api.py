"""The artifact store interface: files of a run, addressed by validated relative names."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import BinaryIO


class ArtifactStore(ABC):
    """Stores each run's files under ``<root>/runs/<run_id>/<name>``."""

    root: str

    @abstractmethod
    def put_file(self, run_id: str, name: str, local_path: str) -> int:
        """Copy a local file in; return its size in bytes."""

    @abstractmethod
    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> int: ...

    @abstractmethod
    def get_file(self, run_id: str, name: str, local_path: str) -> None:
        """Copy a stored file out; raise NotFound when it is not there."""

    @abstractmethod
    def open(self, run_id: str, name: str) -> BinaryIO: ...

    @abstractmethod
    def list_files(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        """(name, size) of every stored file of the run, by walking storage (the metadata index is faster)."""

    @abstractmethod
    def uri(self, run_id: str, name: str = "") -> str: ...

    # Objects: content addressed by the caller under ``<root>/<key>`` (the snapshot store uses ``snapshots/``).
    @abstractmethod
    def put_object(self, key: str, source: str | BinaryIO) -> int:
        """Store a local file (path) or a binary stream under ``key``; return its size."""

    @abstractmethod
    def get_object(self, key: str, local_path: str) -> None:
        """Copy an object out; raise NotFound when there is none."""

    @abstractmethod
    def has_object(self, key: str) -> bool: ...
