"""File digests with a stat-keyed cache: an unchanged file is hashed once, then recognised by one ``stat``.

Transfers compare files by size and MD5 (what S3's ETag and Azure's Content-MD5 hold); datasets record SHA-256.
One read computes both. The cache (one pickle per workspace) maps an absolute path to (size, mtime_ns, inode, ctime_ns)
and what is known of that content; any change to those stat fields forgets it.

What is known need not come from reading the file: after an upload, the ETag S3 reports *is* the file's
``s3etag``; after a local copy, source and copy share a ``token`` (the same bytes, whatever their digest). So a
first transfer reads each file once (to send it), and a re-transfer of unchanged files reads nothing.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import threading
from pathlib import Path

_CHUNK = 1 << 20
S3_PART = 8 << 20  # part size of S3 multipart uploads (their ETag is the MD5 of the parts' MD5s + "-N")
_MAX_ENTRIES = 500_000


def s3_part_size(size: int) -> int:
    """The part size of an S3 multipart upload of ``size`` bytes: S3_PART, larger when S3's 10,000 parts run out."""
    if size <= S3_PART * 10_000:
        return S3_PART
    need = -(-size // 10_000)  # ceil, then whole MiB
    return -(-need // (1 << 20)) * (1 << 20)


def _key(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class HashCache:
    """Thread-safe; ``save()`` writes it back (atomically) when something was added."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[int, int, int, int], dict[str, str]]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                with open(path, "rb") as f:
                    entries = pickle.load(f)
                if isinstance(entries, dict):
                    self._entries = entries
            except Exception:  # noqa: BLE001 - a damaged cache only costs re-hashing
                self._entries = {}

    def digests(self, path: str, st: os.stat_result | None = None, s3_etag: bool = False) -> dict[str, str]:
        """``{"md5": hex, "sha256": hex}`` (and ``"s3etag"`` when asked) of the file at ``path``."""
        path = os.path.abspath(path)
        st = st or os.stat(path)
        key = _key(st)
        with self._lock:
            known = self._entries.get(path)
        wanted = ("md5", "sha256", "s3etag") if s3_etag else ("md5", "sha256")
        if known is not None and known[0] == key and all(k in known[1] for k in wanted):
            return known[1]
        found = _digest_file(path, s3_etag, st.st_size)
        if _key(os.stat(path)) != key:  # written to while being read: not cached, the caller checks again
            return found
        merged = {**(known[1] if known is not None and known[0] == key else {}), **found}
        self.remember(path, st, merged)
        return merged

    def peek(self, path: str, st: os.stat_result) -> dict[str, str] | None:
        """The cached digests when the file is unchanged since they were taken; never reads the file."""
        known = self._entries.get(path if path[:1] == "/" else os.path.abspath(path))  # a dict read: atomic
        return known[1] if known is not None and known[0] == (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns) else None

    def remember(self, path: str, st: os.stat_result, found: dict[str, str]) -> None:
        """Record what is known of the file's content without reading it (added to what is known already)."""
        path = os.path.abspath(path)
        key = _key(st)
        with self._lock:
            known = self._entries.get(path)
            base = known[1] if known is not None and known[0] == key else {}
            self._entries[path] = (key, {**base, **found})
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            entries = self._entries
            if len(entries) > _MAX_ENTRIES:  # forget the oldest half (insertion order)
                entries = dict(list(entries.items())[len(entries) // 2:])
            self._dirty = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump(entries, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path)
        except OSError:
            pass  # an optimisation only


def _digest_file(path: str, s3_etag: bool, size: int) -> dict[str, str]:
    """Digests of the first ``size`` bytes (the size stat'd first: a file that keeps growing is not chased)."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    parts: list[bytes] = []
    part = hashlib.md5(usedforsecurity=False)
    in_part = 0
    part_size = s3_part_size(size)
    left = size
    with open(path, "rb") as f:
        while left > 0 and (chunk := f.read(min(_CHUNK, left))):
            left -= len(chunk)
            md5.update(chunk)
            sha.update(chunk)
            if s3_etag:
                part.update(chunk)
                in_part += len(chunk)
                if in_part >= part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.md5(usedforsecurity=False), 0
    out = {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}
    if s3_etag:
        if in_part:
            parts.append(part.digest())
        # a file below two parts goes in one PUT (ETag: its MD5), a larger one in parts (runyard.data.stores)
        out["s3etag"] = (hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + f"-{len(parts)}"
                         if size >= 2 * S3_PART else out["md5"])
    return out


_shared: dict[Path, HashCache] = {}
_shared_lock = threading.Lock()


def hash_cache_for(workspace_path: Path) -> HashCache:
    """The workspace's cache, one instance per process (what one part learns, the others see)."""
    path = Path(workspace_path) / "cache" / "data-hashes.pickle"
    with _shared_lock:
        cache = _shared.get(path)
        if cache is None:
            cache = _shared[path] = HashCache(path)
        return cache


__all__ = ["HashCache", "S3_PART", "hash_cache_for", "s3_part_size"]
