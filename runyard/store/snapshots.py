"""Code snapshots: content-addressed copies of a run's ``source_directory``.

Each file is stored once under ``snapshots/blobs/<sha256>`` in the artifact store; a snapshot is a manifest
(path → sha256, size, mode) stored under ``snapshots/manifests/<id>.json``, its id the sha256 of the manifest.
A per-folder stat cache (path, size, mtime, mode → sha256) means re-snapshotting unchanged code costs one stat
per file and no reads. Files matched by the folder's ignore file are left out: the first of ``.runyardignore``,
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
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from runyard import env_vars
from runyard.store import blobs
from runyard.store.run_files import leaves
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
    """A taken snapshot: ``keys`` holds (path, size, mtime_ns, mode) of each file, ``shas`` their sha256."""

    id: str
    source: str
    keys: list[tuple[str, int, int, int]]
    shas: list[str]

    @cached_property
    def files(self) -> dict[str, tuple[str, int, int]]:
        """Relative posix path → (sha256, size, permission bits): the manifest's content."""
        return _files(self.keys, self.shas)

    @property
    def total_bytes(self) -> int:
        return sum(key[1] for key in self.keys)

    def manifest_bytes(self) -> bytes:
        return _manifest_json(self.files)

    def describe(self) -> str:
        return f"snapshot {self.id[:12]}: {len(self.keys)} files, {_mb(self.total_bytes):.1f} MB from {self.source}"


def take(source: str | os.PathLike, cache_dir: Path | None = None, exclude: tuple[Path, ...] = (),
         everything: bool = False) -> Snapshot:
    """Walk ``source`` and hash what changed since the last time (per the stat cache in ``cache_dir``).

    ``everything``: every file, ignore files and the always-skipped folders notwithstanding, and no size warning
    (model files are registered whole, not treated as code).

    Unchanged code costs one ``stat`` per file, no reads, and one list comparison. Raises ConfigError, before
    anything is stored, when files cannot be read (listing them).
    """
    root = Path(source).absolute()
    cache_file = cache_dir / f"{hashlib.sha256(str(root).encode()).hexdigest()[:24]}.pickle" if cache_dir else None
    cached_id, cached_keys, cached_shas = _load_cache(cache_file)
    unreadable: list[str] = []
    outside: list[str] = []
    keys = _walk(root, {_dev_ino(p) for p in exclude if os.path.isdir(p)}, unreadable, outside, everything)
    if outside:
        shown = "\n  ".join(outside[:10]) + (f"\n  … and {len(outside) - 10} more" if len(outside) > 10 else "")
        raise ConfigError(
            f"{len(outside)} symlink(s) in {root} point outside it:\n  {shown}\n"
            "a snapshot holds the folder's own files only: copy what they point at into the folder, pass it as a "
            "data input (Datastore.register_local + as_mount), or leave the links out with .runyardignore"
        )
    checked = (lambda snap: snap) if everything else _checked
    if not unreadable and cached_id and keys == cached_keys:  # nothing changed: no file read, no manifest rebuilt
        return checked(Snapshot(cached_id, str(root), keys, cached_shas))
    known = {key[0]: (key[1], key[2], sha) for key, sha in zip(cached_keys, cached_shas)}
    shas: list[str] = []
    kept: list[tuple[str, int, int, int]] = []
    for key in keys:
        rel, size, mtime_ns, _ = key
        old = known.get(rel)
        if old is not None and old[0] == size and old[1] == mtime_ns:
            sha = old[2]
        else:
            try:
                sha = _hash_file(os.path.join(root, rel))
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")
                continue
        kept.append(key)
        shas.append(sha)
    if unreadable:
        shown = "\n  ".join(unreadable[:10]) + (f"\n  … and {len(unreadable) - 10} more" if len(unreadable) > 10 else "")
        raise ConfigError(
            f"cannot read {len(unreadable)} file(s) in source_directory {root}:\n  {shown}\n"
            "fix their permissions, or leave them out with a .runyardignore file (gitignore syntax)"
        )
    snap = Snapshot(hashlib.sha256(_manifest_json(_files(kept, shas))).hexdigest(), str(root), kept, shas)
    if cache_file is not None:
        _save_cache(cache_file, snap.id, kept, shas)
    return checked(snap)


def _files(keys: list[tuple[str, int, int, int]], shas: list[str]) -> dict[str, tuple[str, int, int]]:
    return {rel: (sha, size, mode & 0o7777) for (rel, size, _, mode), sha in zip(keys, shas)}


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
    missing = [(sha, rel, size) for sha, (rel, size) in first_of_each.items() if not blobs.has(artifacts, sha)]
    sent = sum(size for _, _, size in missing)
    show = show_progress if show_progress is not None else (None if sent > _PROGRESS_BYTES else False)
    for sha, rel, _ in track(missing, "snapshot: uploading", show, total_bytes=lambda item: item[2]):
        blobs.put(artifacts, sha, str(Path(snap.source, rel)))
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


def stored(snapshot_id: str, artifacts: "ArtifactStore", scratch: Path, source: str) -> Snapshot:
    """A stored snapshot as a ``Snapshot`` (from its manifest; no file of ``source`` is read): what runs that must
    have the same code submit with — a sweep's trials run the code the sweep was submitted with, as on Azure."""
    files = load(snapshot_id, artifacts, scratch)
    rels = sorted(files)
    return Snapshot(snapshot_id, source, [(rel, files[rel][1], 0, files[rel][2]) for rel in rels],
                    [files[rel][0] for rel in rels])


def materialize(snapshot_id: str, artifacts: "ArtifactStore", dest: Path) -> int:
    """Write a fresh working copy of a stored snapshot into ``dest`` (created); return the number of files."""
    dest.mkdir(parents=True, exist_ok=True)
    files = load(snapshot_id, artifacts, dest.parent)
    for rel, (sha, _size, mode) in files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        blobs.get(artifacts, sha, str(target))
        os.chmod(target, mode | stat.S_IRUSR | stat.S_IWUSR)
    return len(files)


def _walk(root: Path, skip: set[tuple[int, int]], unreadable: list[str], outside: list[str],
          everything: bool = False) -> list[tuple[str, int, int, int]]:
    """(relative posix path, size, mtime_ns, mode) of every file to snapshot. Symlinks that leave ``root`` (file or
    folder, absolute or ``../..``) are listed in ``outside`` instead: the caller refuses them.

    Kept lean on purpose: it runs for every file on every submission (``bench/bench_submit.py`` measures it).
    One ``stat`` per file; folders are only stat-ed when they are symlinks (loops) or may be the workspace.
    """
    out: list[tuple[str, int, int, int]] = []
    real_root = os.path.realpath(root)
    seen: set[tuple[int, int]] = {_dev_ino(root)}
    skip_inodes = {ino for _, ino in skip}
    # (folder, its relative path, the ignore files in force there)
    stack: list[tuple[str, str, tuple[_Rules, ...]]] = [(str(root), "", ())]
    while stack:
        folder, rel_dir, rules = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)  # directory order: stable while a folder is unchanged, which is all we need
        except OSError as exc:
            unreadable.append(f"{rel_dir or './'} ({exc.strerror or exc})")
            continue
        names = {e.name for e in entries}
        ignore_name = None if everything else next((n for n in IGNORE_FILES if n in names), None)
        if ignore_name is not None:
            rules = (*rules, _Rules(os.path.join(folder, ignore_name), len(rel_dir)))
        file_ignored, dir_ignored = _checks(rules)
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                rel = f"{rel_dir}{name}/"
                if (name in ALWAYS_SKIPPED and not everything) or (dir_ignored and dir_ignored(name + "/", rel)):
                    continue
                if entry.is_symlink() and leaves(entry.path, real_root):
                    outside.append(f"{rel[:-1]} → {os.path.realpath(entry.path)}")
                    continue
                if entry.is_symlink() or entry.inode() in skip_inodes:
                    try:
                        key = _dev_ino(entry.path)
                    except OSError:
                        continue
                    if key in seen or key in skip:
                        continue  # a symlink loop, or the workspace itself
                    seen.add(key)
                stack.append((entry.path, rel, rules))
                continue
            rel = rel_dir + name
            if file_ignored and file_ignored(name, rel):
                continue
            if entry.is_symlink() and leaves(entry.path, real_root):
                outside.append(f"{rel} → {os.path.realpath(entry.path)}")
                continue
            try:
                st = entry.stat()
            except OSError as exc:
                unreadable.append(f"{rel} ({exc.strerror or exc})")  # e.g. a dangling symlink
                continue
            if stat.S_ISREG(st.st_mode):
                out.append((rel, st.st_size, st.st_mtime_ns, st.st_mode))
    return out


def _dev_ino(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


_ANY_DEPTH = "^(?:.+/)?"  # how pathspec starts the regex of a pattern without a slash (it matches at any depth)


class _Rules:
    """One ignore file (gitignore syntax, as pathspec reads it), split for speed.

    Most patterns have no slash (``*.log``, ``build/``): they are tested on the entry's own name, short and
    anchored. Patterns with a slash are tested on the path relative to the ignore file's folder; a pattern
    ending in '/' is only tested on folders (a file below an ignored folder is never reached). A file with a
    negation (``!keep.py``) is left to pathspec itself, file by file, and folders are not pruned: a negation can
    bring back a file below a folder another pattern ignores.
    """

    def __init__(self, path: str, cut: int) -> None:
        import pathspec

        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                spec = pathspec.GitIgnoreSpec.from_lines(f)
        except OSError as exc:
            raise ConfigError(f"cannot read ignore file {path}: {exc.strerror or exc}") from exc
        self.cut = cut
        patterns = [(p.include, p.regex.pattern.replace("(?P<ps_d>/)", "/"))
                    for p in spec.patterns if p.include is not None and p.regex is not None]
        self.negated = spec if any(not inc for inc, _ in patterns) else None
        groups: dict[str, list[str]] = {"file_name": [], "dir_name": [], "file_path": [], "dir_path": []}
        for _, rx in patterns:
            dir_only = rx.endswith("/")
            core = rx[len(_ANY_DEPTH):] if rx.startswith(_ANY_DEPTH) else None
            body = None if core is None else core[:-1] if dir_only else core.removesuffix("(?:/|$)")
            by_name = body is not None and "/" not in body.replace("[^/]", "")
            kind = "name" if by_name else "path"
            groups[f"dir_{kind}"].append("^" + core if by_name else rx)
            if not dir_only:
                groups[f"file_{kind}"].append("^" + core if by_name else rx)
        for group, rxs in groups.items():  # pathspec's regexes are meant for search(): not all start with '^'
            setattr(self, group, re.compile("|".join(f"(?:{rx})" for rx in rxs)).search if rxs else None)

    def ignores(self, name: str, rel: str, folder: bool) -> bool:
        """``name``/``rel`` end with '/' for folders; ``rel`` is relative to the snapshot's root."""
        if self.negated is not None:
            return not folder and self.negated.match_file(rel[self.cut:])
        by_name, by_path = (self.dir_name, self.dir_path) if folder else (self.file_name, self.file_path)
        return bool((by_name and by_name(name)) or (by_path and by_path(rel[self.cut:])))


def _checks(rules: tuple[_Rules, ...]):
    """(file check, folder check) for the rules in force in a folder; None when nothing can match."""
    if not rules:
        return None, None
    if len(rules) == 1 and rules[0].negated is None and rules[0].file_path is None:
        only = rules[0].file_name  # the common case: one .gitignore of name patterns
        file_check = (lambda name, rel: only(name)) if only else None
    else:
        file_check = lambda name, rel: any(r.ignores(name, rel, False) for r in rules)  # noqa: E731
    return file_check, lambda name, rel: any(r.ignores(name, rel, True) for r in rules)


def _hash_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_json(files: dict[str, tuple[str, int, int]]) -> bytes:
    return json.dumps({k: list(files[k]) for k in sorted(files)}, separators=(",", ":")).encode()


def _load_cache(path: Path | None) -> tuple[str | None, list, list]:
    """(snapshot id, [(path, size, mtime_ns, mode)…], [sha256…]) of the last snapshot of this folder."""
    if path is None or not path.is_file():
        return None, [], []
    try:
        with open(path, "rb") as f:
            snapshot_id, keys, shas = pickle.load(f)
        return (snapshot_id, keys, shas) if isinstance(keys, list) and len(keys) == len(shas) else (None, [], [])
    except Exception:  # noqa: BLE001 - a damaged or foreign cache only costs re-hashing
        return None, [], []


def _save_cache(path: Path, snapshot_id: str, keys: list, shas: list) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump((snapshot_id, keys, shas), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation; the snapshot itself is fine


def _checked(snap: Snapshot) -> Snapshot:
    """The snapshot, after warning when it is above the soft limits."""
    max_mb, max_files = _limit(WARN_MB_VAR, 300.0), _limit(WARN_FILES_VAR, 2000.0)
    size_mb = _mb(snap.total_bytes)
    if size_mb <= max_mb and len(snap.keys) <= max_files:
        return snap
    largest = heapq.nlargest(5, snap.keys, key=lambda key: key[1])
    listed = ", ".join(f"{rel} ({_mb(size):.1f} MB)" for rel, size, _, _ in largest)
    warnings.warn(
        f"source_directory {snap.source} holds {len(snap.keys)} files, {size_mb:.1f} MB (soft limit: {max_files:g} files, "
        f"{max_mb:g} MB; set {WARN_FILES_VAR}/{WARN_MB_VAR} to change it). Largest: {listed}. Leave data and "
        "outputs out with a .runyardignore file, and pass data to runs as datasets instead.",
        SnapshotSizeWarning, stacklevel=4,
    )
    return snap


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
