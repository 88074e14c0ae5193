"""The narrow workspace context the lower layers receive: the folder, its config, the two stores and settings.

The public ``runyard.Workspace`` extends it with what users call (experiments, datastores, models, Azure's
identity attributes); the runtime, compute targets, environments and submission see only this.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from runyard import env_vars
from runyard.errors import ConfigError, WorkspaceError
from runyard.store import journal

if TYPE_CHECKING:
    from runyard.store.artifacts import ArtifactStore
    from runyard.store.metadata import MetadataStore

CONFIG_DIR = ".runyard"
CONFIG_FILE = "config.json"
DEFAULT_DB = "runyard.db"
DEFAULT_ARTIFACTS = "artifacts"


class WorkspaceContext:
    """A workspace as the machinery sees it.

    Args:
        path: the workspace folder (created when missing). It holds ``config.json``, and by default
            ``runyard.db`` (SQLite) and ``artifacts/``.
        tracking_uri: metadata store URL; overrides ``config.json`` (``sqlite:///…``, ``postgresql+psycopg://…``).
        artifact_uri: artifact store root (folder or fsspec URL); overrides ``config.json``.
    """

    def __init__(self, path: str | os.PathLike, *, tracking_uri: str | None = None, artifact_uri: str | None = None):
        self.path = Path(path).expanduser().absolute()
        _ensure_writable_dir(self.path)
        config = self._read_or_write_config()
        self._config = config
        self.name: str = config.get("name") or config.get("workspace_name") or _default_name(self.path)
        # Azure's identity attributes, for scripts that print or pass them: a local workspace is in no subscription,
        # so they default to a stable id of its folder, "local" and "local" (config.json may set them).
        self.subscription_id: str = str(config.get("subscription_id") or uuid.uuid5(uuid.NAMESPACE_URL, f"runyard:{self.path}"))
        self.resource_group: str = str(config.get("resource_group") or "local")
        self.location: str = str(config.get("location") or "local")
        self.tracking_uri = _resolve_db_url(tracking_uri or config.get("tracking_uri") or f"sqlite:///{DEFAULT_DB}", self.path)
        self.artifact_uri = _resolve_artifact_uri(artifact_uri or config.get("artifact_uri") or DEFAULT_ARTIFACTS, self.path)

    @classmethod
    def from_ref(cls, ref: dict[str, str]):
        """The workspace a request names (``ref()``'s dict: path, tracking_uri, artifact_uri)."""
        return cls(ref["path"], tracking_uri=ref["tracking_uri"], artifact_uri=ref["artifact_uri"])

    def ref(self) -> dict[str, str]:
        """What a request carries to name this workspace in another process."""
        return {"path": str(self.path), "tracking_uri": self.tracking_uri, "artifact_uri": self.artifact_uri}

    @property
    def config(self) -> dict[str, Any]:
        """The workspace's ``config.json``, as read when it was opened."""
        return self._config

    # -- stores -------------------------------------------------------------------------------
    @cached_property
    def metadata(self) -> "MetadataStore":
        from runyard.store.metadata import open_metadata_store

        store = open_metadata_store(self.tracking_uri)
        _replay_journals(store, self.journal_dir)  # what processes that died left unstored
        return store

    def replay_journals(self, say=None) -> int:
        """Store what the metric journals of this workspace's ended processes hold (a run's finalizer calls it
        once the run's processes are gone); a store error is reported with ``say``, and the journals wait."""
        return _replay_journals(self.metadata, self.journal_dir, say)

    @property
    def journal_dir(self) -> Path:
        """Where this workspace's logging processes keep their metric journals (runyard.store.journal)."""
        return journal.folder_for(self.path, self.tracking_uri)

    @cached_property
    def artifacts(self) -> "ArtifactStore":
        from runyard.store.artifacts import open_artifact_store

        return open_artifact_store(self.artifact_uri)

    def environment_variables(self) -> dict[str, str]:
        """The ``RUNYARD_*`` variables that let a child process log into this workspace."""
        return {
            env_vars.WORKSPACE: str(self.path),
            env_vars.TRACKING_URI: self.tracking_uri,
            env_vars.ARTIFACT_URI: self.artifact_uri,
        }

    def compute_settings(self, target: str) -> dict:
        """Settings of a compute target from ``config.json``: ``{"compute": {"local": {"max_concurrent_runs": 2}}}``."""
        compute = self._config.get("compute") or {}
        section = (compute.get(target) or {}) if isinstance(compute, dict) else None
        if not isinstance(section, dict):
            raise ConfigError(f"workspace config {self.path / CONFIG_FILE}: compute.{target} must be an object")
        return dict(section)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, path='{self.path}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkspaceContext) and (self.tracking_uri, self.artifact_uri) == (other.tracking_uri, other.artifact_uri)

    def __hash__(self) -> int:
        return hash((self.tracking_uri, self.artifact_uri))

    def _read_or_write_config(self) -> dict:
        config = self.path / CONFIG_FILE
        if not config.exists():
            _write_json(config, {"name": _default_name(self.path)})
        return _read_config(config)



def _replay_journals(store, folder: Path, say=None) -> int:
    """Replay the metric journals of dead processes (runyard.store.journal); a store error is reported, not raised
    (the journals stay for the next try). Return the values found in the journals replayed, -1 when the store
    could not take them."""
    if not folder.is_dir():
        return 0
    try:
        count, values = journal.replay(store, folder)
    except Exception as exc:  # noqa: BLE001 - opening a workspace must not fail because a replay cannot finish now
        message = f"metric journals in {folder} not replayed yet: {exc}"
        (say or _warn)(message)
        return -1
    if count:
        (say or _warn)(f"replayed {count} metric journal(s) of ended processes ({values} values; stored once each)")
    return values


def _warn(message: str) -> None:
    print(f"runyard: {message}", file=sys.stderr, flush=True)


def default_home() -> Path:
    return Path(os.environ.get(env_vars.HOME) or Path.home() / CONFIG_DIR).expanduser()


def workspace_path_from_uri(uri: str) -> str | None:
    """``runyard:///abs/path`` → ``/abs/path``; ``runyard://`` or ``runyard:`` → None (the current workspace)."""
    parsed = urlparse(uri)
    if parsed.scheme != "runyard":
        raise ConfigError(f"not a runyard URI: {uri!r} (expected runyard:///WORKSPACE-FOLDER)")
    path = (parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else parsed.path
    return path or None


def _default_name(folder: Path) -> str:
    """A project's ``.runyard`` folder is named after the project; other folders after themselves."""
    return folder.parent.name if folder.name == CONFIG_DIR and folder.parent.name else folder.name


def _find_config(start: Path) -> Path | None:
    for folder in [start, *start.parents]:
        if (folder / CONFIG_DIR / CONFIG_FILE).is_file():
            return folder / CONFIG_DIR
    return None


def _ensure_writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError(
            f"cannot create workspace folder {path}: {exc.strerror or exc} — choose a writable folder "
            f"(set {env_vars.HOME}, or run `runyard init` in your project)"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise WorkspaceError(
            f"workspace folder {path} is not writable by this user — fix its permissions or choose another "
            f"folder (set {env_vars.HOME}, or run `runyard init` in your project)"
        )


def _write_project_config(project: str | os.PathLike, settings: dict[str, str]) -> Path:
    """Merge ``settings`` into ``PROJECT/.runyard/config.json`` (created with a default name when missing)."""
    folder = Path(project).expanduser().absolute() / CONFIG_DIR
    _ensure_writable_dir(folder)
    config = folder / CONFIG_FILE
    current = {"name": _default_name(folder), **(_read_config(config) if config.exists() else {})}
    _write_json(config, {**current, **settings})
    return config


def _read_config(config: Path) -> dict:
    try:
        data = json.loads(config.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read workspace config {config}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"workspace config {config} must hold a JSON object")
    return data


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise WorkspaceError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _resolve_db_url(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the workspace folder, not to the current directory."""
    if url.startswith("runyard:"):
        raise ConfigError(f"tracking_uri {url!r} names a workspace, not a database; open Workspace({url!r}) instead")
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url[len(prefix):] not in ("", ":memory:"):
        return prefix + str(base / url[len(prefix):])
    if "://" not in url:
        raise ConfigError(f"tracking_uri {url!r} is not a database URL (sqlite:///PATH or postgresql+psycopg://…)")
    return url


def _resolve_artifact_uri(uri: str, base: Path) -> str:
    if "://" in uri and not uri.startswith("file://"):
        return uri
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
    return str(path if path.is_absolute() else base / path)
