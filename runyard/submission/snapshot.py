"""Code snapshots: content-addressed copies of a run's ``source_directory``.

Each file is stored once under ``snapshots/blobs/<sha256>`` in the artifact store; a snapshot is a manifest
(path → sha256, size, mode) stored under ``snapshots/manifests/<id>.json``, its id the sha256 of the manifest.
A per-folder stat cache (size, mtime, inode → sha256) means re-snapshotting unchanged code costs one stat per
file and no reads. Files matched by the folder's ignore file are left out: the first of ``.runyardignore``,
``.amlignore``, ``.gitignore`` found in each folder (gitignore syntax, patterns relative to that folder).
"""
from __future__ import annotations

import hashlib
import heapq
import io
import json
import os
import pickle
import re
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runyard import env_vars
from runyard.errors import ConfigError

if TYPE_CHECKING:
    from runyard.store.artifacts import ArtifactStore

IGNORE_FILES = (".runyardignore", ".amlignore", ".gitignore")
# Never part of a snapshot: version-control data, runyard's own folder, caches.
ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn", ".runyard", "__pycache__", ".ipynb_checkpoints",
                            ".pytest_cache", ".mypy_cache"})
WARN_MB_VAR = env_vars.SNAPSHOT_WARN_MB
WARN_FILES_VAR = env_vars.SNAPSHOT_WARN_FILES
_CHUNK = 1 << 20
_PROGRESS_BYTES = 8 << 20  # uploads bigger than this show a progress bar (on a terminal)


class SnapshotSizeWarning(UserWarning):
    """The source directory is larger than the soft limit: it is snapshotted anyway, but is it what you meant?"""


@dataclass(frozen=True)
class Snapshot:
    """A taken snapshot: ``files`` maps each relative posix path to (sha256, size, mode)."""

    id: str
    source: str
    files: dict[str, tuple[str, int, int]]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self.files.values())

    def manifest_bytes(self) -> bytes:
        return _manifest_json(self.files)

    def describe(self) -> str:
        return f"snapshot {self.id[:12]}: {len(self.files)} files, {_mb(self.total_bytes):.1f} MB from {self.source}"


def take(source: str | os.PathLike, cache_dir: Path | None = None, exclude: tuple[Path, ...] = ()) -> Snapshot:
    """Walk ``source`` and hash what changed since the last time (per the stat cache in ``cache_dir``).

    Unchanged code costs one ``stat`` per file and no reads. Raises ConfigError, before anything is stored, when
    files cannot be read (listing them).
    """
    root = Path(source).absolute()
    cache_file = cache_dir / f"{hashlib.sha256(str(root).encode()).hexdigest()[:24]}.pickle" if cache_dir else None
    cached_id, cache = _load_cache(cache_file)
    unreadable: list[str] = []
    found = _walk(root, {_dev_ino(p) for p in exclude if os.path.isdir(p)}, unreadable)
    if not unreadable and cached_id and len(found) == len(cache) and all(
        (c := cache.get(rel)) is not None and c[0] == st.st_size and c[1] == st.st_mtime_ns and c[2] == st.st_mode
        for rel, _, st in found
    ):
        snap = Snapshot(cached_id, str(root), {rel: (c[3], c[0], stat.S_IMODE(c[2])) for rel, c in cache.items()})
        _warn_if_large(snap)
        return snap  # nothing changed: no file read, no manifest rebuilt
    files: dict[str, tuple[str, int, int]] = {}
    new_cache: dict[str, tuple[int, int, int, str]] = {}
    for rel, full, st in found:
        c = cache.get(rel)
        if c is not None and c[0] == st.st_size and c[1] == st.st_mtime_ns:
            sha = c[3]
        else:
            try:
                sha = _hash_file(full)
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")
                continue
        files[rel] = (sha, st.st_size, stat.S_IMODE(st.st_mode))
        new_cache[rel] = (st.st_size, st.st_mtime_ns, st.st_mode, sha)
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + (f"\n  … and {len(unreadable) - 10} more" if len(unreadable) > 10 else "")
        raise ConfigError(
            f"cannot read {len(unreadable)} file(s) in source_directory {root}:\n  {shown}\n"
            "fix their permissions, or leave them out with a .runyardignore file (gitignore syntax)"
        )
    snap = Snapshot(hashlib.sha256(_manifest_json(files)).hexdigest(), str(root), files)
    if cache_file is not None:
        _save_cache(cache_file, snap.id, new_cache)
    _warn_if_large(snap)
    return snap


def store(snap: Snapshot, artifacts: "ArtifactStore", show_progress: bool | None = None) -> int:
    """Upload the blobs the store lacks, then the manifest (last: a stored manifest means complete). Return bytes sent.

    A progress bar shows on a terminal when more than a few megabytes travel.
    """
    from runyard.progress import track

    manifest_key = f"snapshots/manifests/{snap.id}.json"
    if artifacts.has_object(manifest_key):
        return 0  # unchanged code: one existence check
    first_of_each: dict[str, tuple[str, int]] = {}
    for rel, (sha, size, _) in sorted(snap.files.items()):
        first_of_each.setdefault(sha, (rel, size))
    missing = [(sha, rel, size) for sha, (rel, size) in first_of_each.items() if not artifacts.has_object(_blob_key(sha))]
    sent = sum(size for _, _, size in missing)
    show = show_progress if show_progress is not None else (None if sent > _PROGRESS_BYTES else False)
    for sha, rel, _ in track(missing, "snapshot: uploading", show, total_bytes=lambda item: item[2]):
        artifacts.put_object(_blob_key(sha), str(Path(snap.source, rel)))
    artifacts.put_object(manifest_key, io.BytesIO(snap.manifest_bytes()))
    return sent


def load(snapshot_id: str, artifacts: "ArtifactStore", scratch: Path) -> dict[str, tuple[str, int, int]]:
    """The manifest of a stored snapshot."""
    path = scratch / f"manifest-{snapshot_id}.json"
    artifacts.get_object(f"snapshots/manifests/{snapshot_id}.json", str(path))
    try:
        return {rel: tuple(entry) for rel, entry in json.loads(path.read_text(encoding="utf-8")).items()}
    finally:
        path.unlink(missing_ok=True)


def materialize(snapshot_id: str, artifacts: "ArtifactStore", dest: Path) -> int:
    """Write a fresh working copy of a stored snapshot into ``dest`` (created); return the number of files."""
    dest.mkdir(parents=True, exist_ok=True)
    files = load(snapshot_id, artifacts, dest.parent)
    for rel, (sha, _size, mode) in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        artifacts.get_object(_blob_key(sha), str(target))
        os.chmod(target, mode | stat.S_IRUSR | stat.S_IWUSR)
    return len(files)


def _blob_key(sha: str) -> str:
    return f"snapshots/blobs/{sha[:2]}/{sha}"


def _walk(root: Path, skip: set[tuple[int, int]], unreadable: list[str]) -> list[tuple[str, str, os.stat_result]]:
    """(relative posix path, full path, stat) of every file to snapshot, following the ignore files.

    Kept lean on purpose: it runs for every file on every submission (``bench/bench_submit.py`` measures it).
    One ``stat`` per file; folders are only stat-ed when they are symlinks (loops) or may be the workspace.
    """
    out: list[tuple[str, str, os.stat_result]] = []
    seen: set[tuple[int, int]] = {_dev_ino(root)}
    skip_inodes = {ino for _, ino in skip}
    # (folder, its relative path, the ignore rules in force there as one function, or None)
    stack: list[tuple[str, str, Callable[[str], object] | None]] = [(str(root), "", None)]
    while stack:
        folder, rel_dir, ignored = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            unreadable.append(f"{rel_dir or './'} ({exc.strerror or exc})")
            continue
        names = {e.name for e in entries}
        ignore_name = next((n for n in IGNORE_FILES if n in names), None)
        if ignore_name is not None:
            ignored = _combine(ignored, rel_dir, _matcher(os.path.join(folder, ignore_name)))
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                rel = f"{rel_dir}{name}/"
                if name in ALWAYS_SKIPPED or (ignored and ignored(rel)):
                    continue
                if entry.is_symlink() or entry.inode() in skip_inodes:
                    try:
                        key = _dev_ino(entry.path)
                    except OSError:
                        continue
                    if key in seen or key in skip:
                        continue  # a symlink loop, or the workspace itself
                    seen.add(key)
                stack.append((entry.path, rel, ignored))
                continue
            rel = rel_dir + name
            if ignored and ignored(rel):
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")  # e.g. a dangling symlink
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((rel, entry.path, st))
    return out


def _dev_ino(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _matcher(path: str) -> Callable[[str], object]:
    """A gitignore file as one function of a relative path (directories end with '/').

    The patterns are pathspec's (gitignore semantics); without negations they are joined into a single regular
    expression — one match per path instead of one per pattern.
    """
    import pathspec

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            spec = pathspec.GitIgnoreSpec.from_lines(f)
    except OSError as exc:
        raise ConfigError(f"cannot read ignore file {path}: {exc.strerror or exc}") from exc
    patterns = [(p.include, p.regex.pattern.replace("(?P<ps_d>/)", "/"))
                for p in spec.patterns if p.include is not None and p.regex is not None]
    if not patterns:
        return lambda rel: False
    if all(include for include, _ in patterns):
        return re.compile("|".join(f"(?:{rx})" for _, rx in patterns)).match  # truthy when ignored
    ordered = [(include, re.compile(rx)) for include, rx in reversed(patterns)]  # the last match decides

    def match(rel: str) -> bool:
        for include, rx in ordered:
            if rx.match(rel):
                return include
        return False

    return match


def _combine(outer: Callable[[str], object] | None, base: str, inner: Callable[[str], object]) -> Callable[[str], object]:
    """The rules of a folder: its parents' (on the whole relative path) and its own ignore file (relative to it)."""
    if outer is None and not base:
        return inner
    cut = len(base)
    if outer is None:
        return lambda rel: inner(rel[cut:])
    return lambda rel: outer(rel) or inner(rel[cut:])


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_json(files: dict[str, tuple[str, int, int]]) -> bytes:
    return json.dumps({k: list(files[k]) for k in sorted(files)}, separators=(",", ":")).encode()


def _load_cache(path: Path | None) -> tuple[str | None, dict[str, tuple]]:
    """(snapshot id, {path: (size, mtime_ns, mode, sha256)}) from the last snapshot of this folder."""
    if path is None or not path.is_file():
        return None, {}
    try:
        with open(path, "rb") as f:
            snapshot_id, entries = pickle.load(f)
        return (snapshot_id, entries) if isinstance(entries, dict) else (None, {})
    except Exception:  # noqa: BLE001 - a damaged or foreign cache only costs re-hashing
        return None, {}


def _save_cache(path: Path, snapshot_id: str, entries: dict[str, tuple]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump((snapshot_id, entries), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; the snapshot itself is fine


def _warn_if_large(snap: Snapshot) -> None:
    max_mb, max_files = _limit(WARN_MB_VAR, 300.0), _limit(WARN_FILES_VAR, 2000.0)
    size_mb = _mb(snap.total_bytes)
    if size_mb <= max_mb and len(snap.files) <= max_files:
        return
    largest = heapq.nlargest(5, snap.files.items(), key=lambda kv: kv[1][1])
    listed = ", ".join(f"{rel} ({_mb(size):.1f} MB)" for rel, (_, size, _) in largest)
    warnings.warn(
        f"source_directory {snap.source} holds {len(snap.files)} files, {size_mb:.1f} MB (soft limit: {max_files:g} files, "
        f"{max_mb:g} MB; set {WARN_FILES_VAR}/{WARN_MB_VAR} to change it). Largest: {listed}. Leave data and "
        "outputs out with a .runyardignore file, and pass data to runs as datasets instead.",
        SnapshotSizeWarning, stacklevel=3,
    )


def _limit(var: str, default: float) -> float:
    value = os.environ.get(var)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{var}={value!r} is not a number") from None


def _mb(n: int) -> float:
    return n / (1 << 20)
