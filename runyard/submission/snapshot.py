"""Code snapshots: content-addressed copies of a run's ``source_directory``.

Each file is stored once under ``snapshots/blobs/<sha256>`` in the artifact store; a snapshot is a manifest
(path → sha256, size, mode) stored under ``snapshots/manifests/<id>.json``, its id the sha256 of the manifest.
A per-folder stat cache (size, mtime, inode → sha256) means re-snapshotting unchanged code costs one stat per
file and no reads. Files matched by the folder's ignore file are left out: the first of ``.runyardignore``,
``.amlignore``, ``.gitignore`` found in each folder (gitignore syntax, patterns relative to that folder).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.errors import ConfigError

if TYPE_CHECKING:
    from runyard.store.artifacts import ArtifactStore

IGNORE_FILES = (".runyardignore", ".amlignore", ".gitignore")
# Never part of a snapshot: version-control data, runyard's own folder, caches.
ALWAYS_SKIPPED = frozenset({".git", ".hg", ".svn", ".runyard", "__pycache__", ".ipynb_checkpoints",
                            ".pytest_cache", ".mypy_cache"})
WARN_MB_VAR = "RUNYARD_SNAPSHOT_WARN_MB"
WARN_FILES_VAR = "RUNYARD_SNAPSHOT_WARN_FILES"
_CHUNK = 1 << 20


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

    Raises ConfigError, before anything is stored, when files cannot be read (listing them).
    """
    root = Path(source).absolute()
    cache_file = cache_dir / f"{hashlib.sha256(str(root).encode()).hexdigest()[:24]}.json" if cache_dir else None
    cache = _load_cache(cache_file)
    files: dict[str, tuple[str, int, int]] = {}
    new_cache: dict[str, list] = {}
    unreadable: list[str] = []
    skip = {os.path.realpath(p) for p in exclude}
    for rel, full, st in _walk(root, skip, unreadable):
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = cache.get(rel)
        if cached and cached[:3] == key:
            sha = cached[3]
        else:
            try:
                sha = _hash_file(full)
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")
                continue
        files[rel] = (sha, st.st_size, stat.S_IMODE(st.st_mode))
        new_cache[rel] = [*key, sha]
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + (f"\n  … and {len(unreadable) - 10} more" if len(unreadable) > 10 else "")
        raise ConfigError(
            f"cannot read {len(unreadable)} file(s) in source_directory {root}:\n  {shown}\n"
            "fix their permissions, or leave them out with a .runyardignore file (gitignore syntax)"
        )
    if cache_file is not None and new_cache != cache:
        _save_cache(cache_file, new_cache)
    snap = Snapshot(hashlib.sha256(_manifest_json(files)).hexdigest(), str(root), files)
    _warn_if_large(snap)
    return snap


def store(snap: Snapshot, artifacts: "ArtifactStore") -> int:
    """Upload the blobs the store lacks, then the manifest (last: a stored manifest means complete). Return bytes sent."""
    manifest_key = f"snapshots/manifests/{snap.id}.json"
    if artifacts.has_object(manifest_key):
        return 0  # unchanged code: one existence check
    sent = 0
    done: set[str] = set()
    for rel, (sha, size, _) in sorted(snap.files.items()):
        if sha in done:
            continue
        done.add(sha)
        key = _blob_key(sha)
        if not artifacts.has_object(key):
            artifacts.put_object(key, str(Path(snap.source, rel)))
            sent += size
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


def _walk(root: Path, skip: set[str], unreadable: list[str]):
    """Yield (relative posix path, full path, stat) of every file to snapshot, following the ignore files."""
    seen_dirs: set[tuple[int, int]] = set()
    stack: list[tuple[str, str, list]] = [(str(root), "", [])]  # (folder, its relative path, active ignore specs)
    while stack:
        folder, rel_dir, specs = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen_dirs:
                continue  # a symlink loop
            seen_dirs.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError as exc:
            unreadable.append(f"{rel_dir or '.'}/ ({exc.strerror or exc})")
            continue
        names = {e.name for e in entries}
        specs = specs + _ignore_spec(folder, rel_dir, names)
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name in ALWAYS_SKIPPED or _ignored(specs, rel + "/") or os.path.realpath(entry.path) in skip:
                    continue
                stack.append((entry.path, rel + "/", specs))
                continue
            if _ignored(specs, rel):
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")  # e.g. a dangling symlink
                continue
            if stat.S_ISREG(st.st_mode):
                yield rel, entry.path, st


def _ignore_spec(folder: str, rel_dir: str, names: set[str]) -> list[tuple[str, Any]]:
    name = next((n for n in IGNORE_FILES if n in names), None)
    if name is None:
        return []
    import pathspec

    try:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            return [(rel_dir, pathspec.GitIgnoreSpec.from_lines(f))]
    except OSError as exc:
        raise ConfigError(f"cannot read ignore file {os.path.join(folder, name)}: {exc.strerror or exc}") from exc


def _ignored(specs: list[tuple[str, Any]], rel: str) -> bool:
    return any(spec.match_file(rel[len(base):]) for base, spec in specs)


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_json(files: dict[str, tuple[str, int, int]]) -> bytes:
    return json.dumps({k: list(files[k]) for k in sorted(files)}, separators=(",", ":")).encode()


def _load_cache(path: Path | None) -> dict[str, list]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # a damaged cache only costs re-hashing


def _save_cache(path: Path, entries: dict[str, list]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; the snapshot itself is fine


def _warn_if_large(snap: Snapshot) -> None:
    max_mb, max_files = _limit(WARN_MB_VAR, 300.0), _limit(WARN_FILES_VAR, 2000.0)
    size_mb = _mb(snap.total_bytes)
    if size_mb <= max_mb and len(snap.files) <= max_files:
        return
    largest = sorted(snap.files.items(), key=lambda kv: -kv[1][1])[:5]
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
