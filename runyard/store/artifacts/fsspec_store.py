"""Artifact store: a local folder by default, ``s3://``, ``gs://``, ``az://`` … (any fsspec URL) by URL.

A local folder is served with plain ``os`` calls (fsspec is imported only for remote URLs): every process that
opens a workspace — a run's supervisor, each training script — saves the import.
"""
from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from runyard import validation
from runyard.errors import NotFound, StoreError, ValidationError
from runyard.store.artifacts.api import ArtifactStore


class FsspecArtifactStore(ArtifactStore):
    def __init__(self, root: str, **storage_options) -> None:
        self.root = root
        self.local = "://" not in root or root.startswith("file://")
        if self.local:
            self.fs = None
            self.base = os.path.abspath(root[len("file://"):] if root.startswith("file://") else root)
            return
        try:
            import fsspec

            self.fs, base = fsspec.core.url_to_fs(root, **storage_options)
        except (ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot open artifact store {root!r}: {exc} (remote schemes need their fsspec package, "
                "e.g. pip install s3fs / gcsfs / adlfs)"
            ) from exc
        self.base = base.rstrip("/")

    def _run_dir(self, run_id: str) -> str:
        return posixpath.join(self.base, "runs", validation.run_id(run_id))

    def _path(self, run_id: str, name: str) -> str:
        run_dir = self._run_dir(run_id)
        path = posixpath.join(run_dir, validation.artifact_path(name))
        if self.local:
            # Names are validated; this also refuses a symlink planted inside the run folder that points out.
            real_dir = os.path.realpath(run_dir)
            real = os.path.realpath(path)
            if real != real_dir and not real.startswith(real_dir + os.sep):
                raise ValidationError(f"artifact name {name!r} resolves outside the run's folder")
        return path

    def put_file(self, run_id: str, name: str, local_path: str) -> int:
        return self._write(self._path(run_id, name), local_path, name)

    def put_stream(self, run_id: str, name: str, stream: BinaryIO) -> int:
        return self._write(self._path(run_id, name), stream, name)

    def get_file(self, run_id: str, name: str, local_path: str) -> None:
        self._read(self._path(run_id, name), local_path, f"run {run_id} has no file {name!r}")

    # -- objects outside runs (the snapshot content store) ------------------------------------
    def _object_path(self, key: str) -> str:
        return posixpath.join(self.base, validation.artifact_path(key))

    def put_object(self, key: str, source: str | BinaryIO) -> int:
        return self._write(self._object_path(key), source, key)

    def get_object(self, key: str, local_path: str) -> None:
        self._read(self._object_path(key), local_path, f"artifact store {self.root} has no object {key!r}")

    def has_object(self, key: str) -> bool:
        return self._isfile(self._object_path(key))

    def _isfile(self, path: str) -> bool:
        return os.path.isfile(path) if self.local else self.fs.isfile(path)

    # -- one writer and one reader for run files and objects ----------------------------------
    def _write(self, path: str, source: str | BinaryIO, name: str) -> int:
        """Store a local file (a path) or a binary stream at ``path``; local writes are atomic."""
        if isinstance(source, str) and not os.path.isfile(source):
            raise NotFound(f"cannot upload {source!r}: no such file")
        with self._errors(f"write {name}"):
            if not self.local:
                self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
                if isinstance(source, str):
                    self.fs.put_file(source, path)
                else:
                    with self.fs.open(path, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                return self.fs.size(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.uploading"
            if isinstance(source, str):
                shutil.copyfile(source, tmp)
            else:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            os.replace(tmp, path)  # readers never see half a file
            return os.path.getsize(path)

    def _read(self, path: str, local_path: str, missing: str) -> None:
        if not self._isfile(path):
            raise NotFound(missing)
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        with self._errors(f"read {path}"):
            if self.local:
                shutil.copyfile(path, local_path)
            else:
                self.fs.get_file(path, local_path)

    def open(self, run_id: str, name: str) -> BinaryIO:
        path = self._path(run_id, name)
        if not self._isfile(path):
            raise NotFound(f"run {run_id} has no file {name!r}")
        return open(path, "rb") if self.local else self.fs.open(path, "rb")

    def list_files(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        run_dir = self._run_dir(run_id)
        out = []
        for rel, size in self._walk(run_dir):
            if rel.endswith(".uploading") or (prefix and not (rel == prefix or rel.startswith(prefix.rstrip("/") + "/"))):
                continue
            out.append((rel, size))
        return sorted(out)

    def _walk(self, folder: str) -> Iterator[tuple[str, int]]:
        """(posix path relative to ``folder``, size) of every file below it."""
        if self.local:
            for root, _, files in os.walk(folder):
                for f in files:
                    full = os.path.join(root, f)
                    yield os.path.relpath(full, folder).replace(os.sep, "/"), os.path.getsize(full)
            return
        if self.fs.exists(folder):
            for path, info in self.fs.find(folder, detail=True).items():
                yield posixpath.relpath(path, folder), int(info.get("size") or 0)

    def uri(self, run_id: str, name: str = "") -> str:
        path = self._run_dir(run_id) if not name else self._path(run_id, name)
        return path if self.local else self.fs.unstrip_protocol(path)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreError(f"artifact store {self.root}: cannot {what}: {exc}") from exc
