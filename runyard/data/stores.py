"""The files of one datastore: a local folder (plain ``os`` calls) or a bucket/container through fsspec.

Every error becomes a :class:`DataError` that names the datastore and its endpoint, never a secret: unreachable
endpoints, refused credentials, a missing bucket or container.
"""
from __future__ import annotations

import os
import posixpath
import socket
import stat
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from runyard.data.hashing import HashCache
from runyard.errors import DataError, NotFound

Progress = Callable[[int], None]  # called with the bytes just moved
_S3_PARTS_IN_FLIGHT = 10


def walk_files(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path, posix path relative to ``root``, stat) of every file under ``root``, sorted; runyard's own temporary
    files (``.runyard-*``) are left out. One ``scandir`` + ``stat`` per entry."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except FileNotFoundError:
            continue
        subdirs = []
        for entry in reversed(entries):
            if entry.name.startswith(".runyard-"):
                continue
            try:
                if entry.is_dir():
                    subdirs.append((entry.path, prefix + entry.name + "/"))
                    continue
                st = entry.stat()
            except OSError:
                continue  # removed while listing
            yield entry.path, prefix + entry.name, st
        stack.extend(reversed(subdirs))


@dataclass(frozen=True)
class Remote:
    """A file in a datastore: its size and, when the store records one, its content tag (MD5 or S3 ETag)."""

    size: int
    tag: str | None = None


class Files(ABC):
    """One datastore's files, keyed by posix paths relative to the datastore's root."""

    label: str  # "datastore 'lake' (s3://bucket at http://127.0.0.1:9000)": what messages name
    tag_kind = "md5"  # which digest of a local file equals what list() reports
    needs_md5 = False  # uploads send the MD5 along (Azure's Content-MD5), so the file is hashed before it is sent
    server_tags = False  # the service computes the tag (S3's ETag, GCS's md5Hash): learnt by listing after uploads

    @abstractmethod
    def list(self, prefix: str = "") -> dict[str, Remote]:
        """Every file at or under ``prefix`` (a file's own key when ``prefix`` names a file)."""
        ...

    def tag_of(self, key: str, remote: Remote) -> str | None:
        """The content tag of a listed file by its content (a local datastore hashes it, through the cache)."""
        return remote.tag

    def after_put(self, local: str, st: os.stat_result, key: str, known: Mapping[str, str]) -> None:
        """Record what a finished upload tells about the file's content (see runyard.data.hashing)."""

    def prepare(self, keys: list[str]) -> None:
        """Before uploading these keys (a local datastore makes their folders once)."""

    @abstractmethod
    def put(self, local: str, key: str, digests: Mapping[str, str], progress: Progress) -> None:
        ...

    @abstractmethod
    def get(self, key: str, local: str, progress: Progress) -> os.stat_result | None:
        """Write the file into ``local``; the copy's stat when known without another system call."""

    @abstractmethod
    def delete(self, key: str) -> None:
        ...

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        ...

    def check(self) -> None:
        """Reach the store once: DataError when it is unreachable, refuses the credentials or lacks the bucket."""
        self.list("\0-runyard-probe")

    def local_path(self, key: str) -> Path | None:
        """Where the file is on this machine (a local datastore), else None."""
        return None

    @abstractmethod
    def uri(self, key: str = "") -> str:
        ...


class LocalFiles(Files):
    def __init__(self, name: str, root: Path, cache: HashCache) -> None:
        self.root = root
        self.cache = cache
        self.label = f"datastore {name!r} ({root})"
        self._written: dict[str, os.stat_result] = {}  # stat of each copy just written, for after_put

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def list(self, prefix: str = "") -> dict[str, Remote]:
        start = self._path(prefix)
        out: dict[str, Remote] = {}
        try:
            st = start.stat()
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise DataError(f"{self.label}: cannot read {prefix or '/'}: {exc.strerror or exc}") from exc
        if stat.S_ISREG(st.st_mode):
            return {prefix: Remote(st.st_size)}
        base = prefix + "/" if prefix else ""
        peek = self.cache.peek
        for path, rel, st in walk_files(str(start)):
            known = peek(path, st) or {}  # a file this machine knows: its tag costs nothing
            out[base + rel] = Remote(st.st_size, known.get("md5") or known.get("token"))
        return out

    def tag_of(self, key: str, remote: Remote) -> str | None:
        try:
            return self.cache.digests(str(self._path(key)))["md5"]
        except OSError:
            return None

    def after_put(self, local: str, st: os.stat_result, key: str, known: Mapping[str, str]) -> None:
        # the copy has the source's bytes: both get the source's digests, or a token they share
        token = known.get("token") or f"copy:{uuid.uuid4().hex}"
        facts = {k: v for k, v in known.items() if k in ("md5", "sha256")} or {"token": token}
        self.cache.remember(local, st, facts)
        dest = os.path.join(self.root, key)
        self.cache.remember(dest, self._written.pop(dest, None) or os.stat(dest), facts)

    def prepare(self, keys: list[str]) -> None:
        for folder in {posixpath.dirname(k) for k in keys}:
            os.makedirs(self._path(folder), exist_ok=True)

    def put(self, local: str, key: str, digests: Mapping[str, str], progress: Progress) -> None:
        dest = os.path.join(self.root, key)
        if not os.path.lexists(dest):  # a new file is written in place (a half-written one is re-sent: its size
            self._written[dest] = _copy(local, dest)  # differs, or nothing is known of it)
        else:  # a file that exists is replaced whole, never left half-overwritten
            tmp = f"{os.path.dirname(dest)}/.runyard-{os.path.basename(dest)}.{os.getpid()}.{threading.get_ident()}.part"
            try:
                _copy(local, tmp)
                os.replace(tmp, dest)
                self._written[dest] = os.stat(dest)  # after the rename (which may change ctime)
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
        progress(self._written[dest].st_size)

    def get(self, key: str, local: str, progress: Progress) -> os.stat_result | None:
        written = _copy(os.path.join(self.root, key), local)
        progress(written.st_size)
        return written

    def delete(self, key: str) -> None:
        self._written.pop(os.path.join(self.root, key), None)  # a copy removed before after_put: forget its stat
        self._path(key).unlink(missing_ok=True)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"{self.label} has no file {key!r}") from exc

    def check(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"{self.label}: the folder does not exist (re-register the datastore with its new path)")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def uri(self, key: str = "") -> str:
        return str(self._path(key))


def _copy(src: str, dst: str | Path) -> os.stat_result:
    """Copy the bytes ``src`` has now (a file that keeps growing is not chased: the caller sees it changed);
    returns the copy's stat. Modes are not copied: a datastore holds data, as S3 and Azure do."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = os.fstat(fin.fileno()).st_size
        offset = 0
        while left > 0:
            sent = os.sendfile(fout.fileno(), fin.fileno(), offset, min(left, 1 << 30))
            if sent == 0:
                break
            offset += sent
            left -= sent
        return os.fstat(fout.fileno())


class FsspecFiles(Files):
    """S3 (s3fs), Azure Blob (adlfs), Google Cloud Storage (gcsfs)."""

    def __init__(self, name: str, fs: Any, base: str, scheme: str, endpoint: str | None, secrets: tuple[str, ...],
                 boto3_client: Callable[[], Any] | None = None) -> None:
        self.fs = fs
        self.boto3_client = boto3_client  # S3: a boto3 client with the same credentials, for big uploads
        self.base = base.strip("/")
        self.scheme = scheme
        self.secrets = tuple(s for s in secrets if s)
        self.label = f"datastore {name!r} ({scheme}://{self.base}" + (f" at {endpoint}" if endpoint else "") + ")"
        self.endpoint = endpoint
        self.tag_kind = "s3etag" if scheme == "s3" else "md5"
        self.needs_md5 = scheme == "az"
        self.server_tags = scheme in ("s3", "gs")

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}" if key else self.base

    def list(self, prefix: str = "") -> dict[str, Remote]:
        path = self._path(prefix)
        out: dict[str, Remote] = {}
        cut = len(self.base) + 1
        with self._errors(f"list {prefix or '/'}"):
            try:
                found = self.fs.find(path, detail=True, withdirs=False)
            except FileNotFoundError:
                return out
        for full, info in found.items():
            if info.get("type") == "directory" or full.endswith("/"):
                continue
            key = full[cut:] if full.startswith(self.base + "/") else full
            out[key] = Remote(int(info.get("size") or 0), self._tag(info))
        return out

    def _tag(self, info: Mapping[str, Any]) -> str | None:
        if self.scheme == "s3":
            etag = info.get("ETag") or info.get("etag")
            return etag.strip('"') if etag else None
        if self.scheme == "gs":
            md5 = info.get("md5Hash")
            if md5:
                import base64

                return base64.b64decode(md5).hex()
            return None
        settings = info.get("content_settings") or {}
        md5 = settings.get("content_md5") if isinstance(settings, Mapping) else getattr(settings, "content_md5", None)
        return bytes(md5).hex() if md5 else None

    def put(self, local: str, key: str, digests: Mapping[str, str], progress: Progress) -> None:
        callback = _Callback(progress)
        kwargs: dict[str, Any] = {}
        if self.scheme == "s3":
            from runyard.data.hashing import S3_PART

            size = os.path.getsize(local)
            if size >= 2 * S3_PART:
                with self._errors(f"upload {key}"):
                    self._s3_parts(local, self._path(key), size, progress)
                return
        elif self.scheme == "az":
            from azure.storage.blob import ContentSettings

            kwargs["content_settings"] = ContentSettings(content_md5=bytearray.fromhex(digests["md5"]))
        with self._errors(f"upload {key}"):
            self.fs.put_file(local, self._path(key), callback=callback, **kwargs)

    def _s3_parts(self, local: str, path: str, size: int, progress: Progress) -> None:
        """A big file in parts through boto3's transfer manager: s3fs sends its parts in batches from one event
        loop and waits for each batch (about half boto3's speed measured on one 1 GB file)."""
        from boto3.s3.transfer import TransferConfig

        from runyard.data.hashing import S3_PART, s3_part_size

        bucket, key, _ = self.fs.split_path(path)
        config = TransferConfig(multipart_threshold=2 * S3_PART, multipart_chunksize=s3_part_size(size),
                                max_concurrency=_S3_PARTS_IN_FLIGHT)
        self.boto3_client().upload_file(local, bucket, key, Config=config, Callback=progress)
        self.fs.invalidate_cache(path)

    def get(self, key: str, local: str, progress: Progress) -> os.stat_result | None:
        with self._errors(f"download {key}"):
            self.fs.get_file(self._path(key), local, callback=_Callback(progress))
        return None

    def delete(self, key: str) -> None:
        with self._errors(f"delete {key}"):
            try:
                self.fs.rm_file(self._path(key))
            except FileNotFoundError:
                pass

    def open(self, key: str) -> BinaryIO:
        with self._errors(f"open {key}"):
            try:
                return self.fs.open(self._path(key), "rb")
            except FileNotFoundError as exc:
                raise NotFound(f"{self.label} has no file {key!r}") from exc

    def check(self) -> None:
        if self.endpoint:  # one connection attempt first: the clients retry an unreachable address for half a minute
            parts = urlsplit(self.endpoint)
            try:
                socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                         timeout=5).close()
            except OSError as exc:
                raise DataError(f"{self.label}: cannot reach the store: the endpoint cannot be reached (is the "
                                f"service running, is the address right?): {exc.strerror or exc}") from None
        with self._errors("reach the store"):
            bucket = self.base.split("/", 1)[0]
            try:
                self.fs.ls(bucket, detail=False)
            except FileNotFoundError as exc:
                what = "container" if self.scheme == "az" else "bucket"
                raise DataError(f"{self.label}: the {what} {bucket!r} does not exist") from exc

    def uri(self, key: str = "") -> str:
        return f"{self.scheme}://{self._path(key)}"

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (DataError, NotFound, FileNotFoundError, IsADirectoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - every store error reaches the user as one clear DataError
            raise DataError(f"{self.label}: cannot {what}: {self._explain(exc)}") from None

    def _explain(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        code = _error_code(exc)
        if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationFailure", "AuthenticationFailed",
                    "InvalidSecurity", "ExpiredToken", "AccessDenied", "Forbidden", "403",
                    "ClientAuthenticationError"} or "AuthenticationFailed" in text or "403" in text.split(":")[0]:
            reason = "the credentials were refused" + (f" ({code})" if code else "")
        elif code in {"NoSuchBucket", "ContainerNotFound"}:
            reason = "the bucket or container does not exist" + f" ({code})"
        elif _is_connection_error(exc):
            reason = "the endpoint cannot be reached (is the service running, is the address right?)"
        else:
            reason = text.strip().splitlines()[0][:300]
        for secret in self.secrets:  # belt and braces: no message ever carries a secret
            reason = reason.replace(secret, "***")
        return reason


def _error_code(exc: BaseException) -> str | None:
    seen = 0
    while exc is not None and seen < 6:
        if getattr(exc, "status_code", None) in (401, 403):  # Azure's HttpResponseError
            return "AuthenticationFailed"
        response = getattr(exc, "response", None)
        if isinstance(response, Mapping):
            code = (response.get("Error") or {}).get("Code")
            if code:
                return str(code)
        code = getattr(exc, "error_code", None)
        if code:
            return str(getattr(code, "value", code))
        if type(exc).__name__ == "ClientAuthenticationError":
            return "ClientAuthenticationError"
        if isinstance(exc, PermissionError):
            return "AccessDenied"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def _is_connection_error(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        name = type(exc).__name__
        if isinstance(exc, ConnectionError) or name in {"EndpointConnectionError", "ServiceRequestError",
                                                        "ClientConnectorError", "ConnectTimeoutError",
                                                        "ServerDisconnectedError", "ClientOSError"}:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


class _Callback:
    """fsspec's callback protocol, reporting bytes to a progress function."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.value = 0

    def set_size(self, size: int | None) -> None:
        pass

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self.progress(inc)

    def absolute_update(self, value: int) -> None:
        self.relative_update(value - self.value)

    def branched(self, *args: Any, **kwargs: Any) -> None:
        return None

    def call(self, *args: Any, **kwargs: Any) -> None:
        pass


__all__ = ["Files", "FsspecFiles", "LocalFiles", "Remote"]
