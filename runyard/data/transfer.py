"""Parallel, resumable upload and download between this machine and a datastore.

A file whose size and content hash already match on the other side is skipped (MD5 against a local copy's digest,
S3's ETag or Azure's Content-MD5), so an interrupted transfer goes on where it stopped and an unchanged folder
transfers nothing. Digests come from a stat-keyed cache: re-checking an unchanged file costs one ``stat``. A local
file that changes while it is uploaded is not left half-sent: its copy is removed and the transfer reports it.
"""
from __future__ import annotations

import os
import posixpath
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from runyard.data.hashing import HashCache
from runyard.data.stores import Files, LocalFiles, Remote
from runyard.errors import DataError


@dataclass
class TransferReport:
    """What a transfer did: files moved, files skipped (unchanged, or existing without ``overwrite``), bytes."""

    transferred: int = 0
    skipped: int = 0
    bytes: int = 0
    seconds: float = 0.0
    changed: list[str] = field(default_factory=list)  # local files that changed while being uploaded

    def describe(self, verb: str) -> str:
        rate = self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
        return (f"{verb} {self.transferred} files ({self.bytes / 1e6:,.1f} MB, {rate:,.0f} MB/s), "
                f"skipped {self.skipped} already there, in {self.seconds:.2f} s")


def _workers(files: Files) -> int:
    return 8 if isinstance(files, LocalFiles) else 32


def upload(files: Files, pairs: Sequence[tuple[str, str]], prefix: str, overwrite: bool, cache: HashCache,
           show_progress: bool | None = None) -> TransferReport:
    """Send each (local path, key); ``prefix``: the keys' common folder (one listing of what is there)."""
    started = time.perf_counter()
    report = TransferReport()
    existing = files.list(prefix) if pairs else {}
    todo: list[tuple[str, str, os.stat_result, Remote | None]] = []
    for local, key in pairs:
        try:
            st = os.stat(local)
        except OSError as exc:
            raise DataError(f"cannot read {local}: {exc.strerror or exc}") from exc
        remote = existing.get(key)
        if remote is not None and not overwrite:  # Azure's semantics: existing files are left as they are
            report.skipped += 1
            continue
        if remote is not None and remote.tag is not None and remote.size == st.st_size:
            known = cache.peek(local, st)  # both sides' digests known without reading: decided here, no pool
            if known is not None and known.get(files.tag_kind) == remote.tag:
                report.skipped += 1
                continue
        todo.append((local, key, st, remote))
    lock = threading.Lock()
    s3 = files.tag_kind == "s3etag"

    with _bar(f"uploading {len(todo)} files", sum(t[2].st_size for t in todo), show_progress) as bar:
        def one(item: tuple[str, str, os.stat_result, Remote | None]) -> None:
            local, key, st, remote = item
            digests = cache.digests(local, st, s3_etag=s3)
            if remote is not None and remote.size == st.st_size and files.tag_of(key, remote) == digests[files.tag_kind]:
                with lock:
                    report.skipped += 1
                bar.advance(st.st_size)
                return
            moved = [0]

            def progress(n: int) -> None:
                moved[0] += n
                bar.advance(n)

            files.put(local, key, digests, progress)
            after = os.stat(local)
            if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                files.delete(key)  # a copy of a file in the middle of being written is worse than none
                with lock:
                    report.changed.append(local)
                return
            bar.advance(max(0, st.st_size - moved[0]))
            with lock:
                report.transferred += 1
                report.bytes += st.st_size

        _run_all(one, todo, _workers(files))
    cache.save()
    report.seconds = time.perf_counter() - started
    if report.changed:
        shown = ", ".join(report.changed[:5]) + (f" and {len(report.changed) - 5} more" if len(report.changed) > 5 else "")
        raise DataError(f"{len(report.changed)} file(s) changed while they were being uploaded to {files.label} and "
                        f"were not kept there: {shown} — upload again once they are complete (the other "
                        f"{report.transferred} were uploaded)")
    return report


def download(files: Files, prefix: str, target: Path, overwrite: bool, cache: HashCache,
             show_progress: bool | None = None, listing: dict[str, Remote] | None = None,
             strip: str = "") -> TransferReport:
    """Fetch every file under ``prefix`` into ``target`` (keys keep their path, less ``strip``)."""
    started = time.perf_counter()
    report = TransferReport()
    found = files.list(prefix) if listing is None else listing
    target = target.absolute()
    todo: list[tuple[str, Path, Remote]] = []
    for key, remote in sorted(found.items()):
        rel = key[len(strip):].lstrip("/") if strip and key.startswith(strip) else key
        rel = rel or posixpath.basename(key)
        dest = (target / rel).resolve()
        if dest != target.resolve() and target.resolve() not in dest.parents:
            raise DataError(f"{files.label}: the file {key!r} would be written outside {target}; not downloading it")
        if dest.exists() and not overwrite:
            report.skipped += 1
            continue
        todo.append((key, dest, remote))
    lock = threading.Lock()
    s3 = files.tag_kind == "s3etag"

    with _bar(f"downloading {len(todo)} files", sum(r.size for _, _, r in todo), show_progress) as bar:
        def one(item: tuple[str, Path, Remote]) -> None:
            key, dest, remote = item
            if dest.is_file():
                st = dest.stat()
                tag = files.tag_of(key, remote)
                if st.st_size == remote.size and tag is not None and cache.digests(str(dest), st, s3)[files.tag_kind] == tag:
                    with lock:
                        report.skipped += 1
                    bar.advance(remote.size)
                    return
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.parent / f".runyard-{dest.name}.{os.getpid()}.{threading.get_ident()}.part"
            moved = [0]

            def progress(n: int) -> None:
                moved[0] += n
                bar.advance(n)

            try:
                files.get(key, str(tmp), progress)
                if dest.is_dir():
                    raise DataError(f"cannot download {key!r}: {dest} is a folder")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            bar.advance(max(0, remote.size - moved[0]))
            with lock:
                report.transferred += 1
                report.bytes += remote.size

        _run_all(one, todo, _workers(files))
    cache.save()
    report.seconds = time.perf_counter() - started
    return report


def _run_all(fn, items: list, workers: int) -> None:
    """``fn`` over ``items`` in a pool; the first error stops what has not started and is raised."""
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    failed: list[BaseException] = []
    stop = threading.Event()

    def guarded(item) -> None:
        if stop.is_set():
            return
        try:
            fn(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failed.append(exc)
            stop.set()

    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="runyard-transfer") as pool:
        list(pool.map(guarded, items))
    if failed:
        raise failed[0]


def _bar(description: str, total: int, show: bool | None):
    from runyard.progress import ByteBar

    return ByteBar(description, total, show if show is not None else total > (8 << 20))


__all__ = ["TransferReport", "download", "upload"]
