"""Artifact store over fsspec: a local folder by default, ``s3://``, ``gs://``, ``az://`` … by URL."""
from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from runyard import validation
from runyard.errors import NotFound, StoreError, ValidationError
from runyard.store.artifacts.api import ArtifactStore


class FsspecArtifactStore(ArtifactStore):
    def __init__(self, root: str, **storage_options) -> None:
        self.root = root
        try:
            self.fs, base = fsspec.core.url_to_fs(root, **storage_options)
        except (ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot open artifact store {root!r}: {exc} (remote schemes need their fsspec package, "
                "e.g. pip install s3fs / gcsfs / adlfs)"
            ) from exc
        self.local = isinstance(self.fs, LocalFileSystem)
        self.base = base.rstrip("/") if not self.local else os.path.abspath(base)

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
        path = self._object_path(key)
        return os.path.isfile(path) if self.local else self.fs.isfile(path)

    # -- one writer and one reader for run files and objects ----------------------------------
    def _write(self, path: str, source: str | BinaryIO, name: str) -> int:
        """Store a local file (a path) or a binary stream at ``path``; local writes are atomic."""
        if isinstance(source, str) and not os.path.isfile(source):
            raise NotFound(f"cannot upload {source!r}: no such file")
        with self._errors(f"write {name}"):
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            if not self.local:
                if isinstance(source, str):
                    self.fs.put_file(source, path)
                else:
                    with self.fs.open(path, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                return self.fs.size(path)
            tmp = f"{path}.{os.getpid()}.uploading"
            if isinstance(source, str):
                shutil.copyfile(source, tmp)
            else:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
            os.replace(tmp, path)  # readers never see half a file
            return os.path.getsize(path)

    def _read(self, path: str, local_path: str, missing: str) -> None:
        if not (os.path.isfile(path) if self.local else self.fs.isfile(path)):
            raise NotFound(missing)
        os.makedirs(os.path.dirname(os.path.abspath(local_path)), exist_ok=True)
        with self._errors(f"read {path}"):
            if self.local:
                shutil.copyfile(path, local_path)
            else:
                self.fs.get_file(path, local_path)

    def open(self, run_id: str, name: str) -> BinaryIO:
        path = self._path(run_id, name)
        if not self.fs.isfile(path):
            raise NotFound(f"run {run_id} has no file {name!r}")
        return self.fs.open(path, "rb")

    def list_files(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        run_dir = self._run_dir(run_id)
        if not self.fs.exists(run_dir):
            return []
        found = self.fs.find(run_dir, detail=True)
        out = []
        for path, info in found.items():
            rel = posixpath.relpath(path if not self.local else path.replace(os.sep, "/"), run_dir.replace(os.sep, "/"))
            if rel.endswith(".uploading") or (prefix and not (rel == prefix or rel.startswith(prefix.rstrip("/") + "/"))):
                continue
            out.append((rel, int(info.get("size") or 0)))
        return sorted(out)

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
