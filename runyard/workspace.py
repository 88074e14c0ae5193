"""The Workspace: a folder holding the run history's configuration, database and artifacts (DESIGN.md §5)."""
from __future__ import annotations

import json
import os
import uuid
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from runyard import env_vars
from runyard.errors import ConfigError, WorkspaceError

if TYPE_CHECKING:
    from runyard.compute.api import ComputeTarget
    from runyard.config.environment import Environment
    from runyard.deploy import LocalWebservice
    from runyard.model import Model
    from runyard.context.logger import MetricLogger
    from runyard.experiment import Experiment
    from runyard.run import Run
    from runyard.store.artifacts import ArtifactStore
    from runyard.data.datastore import Datastore
    from runyard.data.dataset import Dataset
    from runyard.store.metadata import MetadataStore

CONFIG_DIR = ".runyard"
CONFIG_FILE = "config.json"
DEFAULT_DB = "runyard.db"
DEFAULT_ARTIFACTS = "artifacts"


class Workspace:
    """A runyard workspace.

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

    # -- finding a workspace ------------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, auth: object = None, _logger: object = None,
                    _file_name: str | None = None) -> "Workspace":
        """Find the workspace: the nearest ``.runyard/config.json`` upward, else ``$RUNYARD_HOME``, else ``~/.runyard``.

        Args:
            path: start the upward search here (a folder, or a ``config.json`` file). When given and nothing is
                found, that is an error rather than a fall-back to the default workspace.
            auth: accepted for Azure ML scripts and ignored (a local workspace needs no login).
        """
        if path is not None:
            start = Path(path).expanduser().absolute()
            if start.is_file():
                return cls(start.parent)
            found = _find_config(start)
            if found is None:
                raise ConfigError(
                    f"no {CONFIG_DIR}/{CONFIG_FILE} found in {start} or any folder above it — "
                    f"create one with `runyard init {start}`"
                )
            return cls(found)
        found = _find_config(Path.cwd())
        if found is not None:
            return cls(found)
        return cls(default_home())

    @classmethod
    def create(
        cls, path: str | os.PathLike = ".", *, tracking_uri: str | None = None, artifact_uri: str | None = None,
        exist_ok: bool = True,
    ) -> "Workspace":
        """Create ``PATH/.runyard/config.json`` (a project workspace found by ``from_config`` below PATH).

        On an existing workspace (``exist_ok=True``), the URIs given replace those in its config; others stay.
        """
        config = Path(path).expanduser().absolute() / CONFIG_DIR / CONFIG_FILE
        if config.exists() and not exist_ok:
            raise ConfigError(f"a workspace already exists at {config.parent}")
        given = {k: v for k, v in (("tracking_uri", tracking_uri), ("artifact_uri", artifact_uri)) if v}
        if given or not config.exists():
            _write_project_config(path, given)
        return cls(config.parent)

    @classmethod
    def from_environment(cls) -> "Workspace":
        """The workspace a process started by runyard belongs to (``RUNYARD_*`` variables), else ``from_config()``."""
        tracking = os.environ.get(env_vars.TRACKING_URI)
        folder = os.environ.get(env_vars.WORKSPACE)
        if tracking and tracking.startswith("runyard:"):
            folder, tracking = workspace_path_from_uri(tracking) or folder, None
        if folder:
            return cls(folder, tracking_uri=tracking, artifact_uri=os.environ.get(env_vars.ARTIFACT_URI))
        ws = cls.from_config()
        if tracking or os.environ.get(env_vars.ARTIFACT_URI):
            return cls(ws.path, tracking_uri=tracking, artifact_uri=os.environ.get(env_vars.ARTIFACT_URI))
        return ws

    def write_config(self, path: str | os.PathLike = ".") -> Path:
        """Write ``PATH/.runyard/config.json`` pointing at this workspace's stores (share one history across projects)."""
        return _write_project_config(
            path, {"name": self.name, "tracking_uri": self.tracking_uri, "artifact_uri": self.artifact_uri}
        )

    # -- stores -------------------------------------------------------------------------------
    @cached_property
    def metadata(self) -> "MetadataStore":
        from runyard.store.metadata import open_metadata_store

        return open_metadata_store(self.tracking_uri)

    @cached_property
    def artifacts(self) -> "ArtifactStore":
        from runyard.store.artifacts import open_artifact_store

        return open_artifact_store(self.artifact_uri)

    @property
    def logger(self) -> "MetricLogger":
        from runyard.context.logger import logger_for

        return logger_for(self.metadata, self.path / "spool")

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

    # -- contents -----------------------------------------------------------------------------
    @property
    def compute_targets(self) -> dict[str, "ComputeTarget"]:
        """Every compute target, by name: ``local`` and those made with ``ComputeTarget.create``."""
        from runyard.compute.registry import all_targets

        return all_targets(self)

    @property
    def experiments(self) -> dict[str, "Experiment"]:
        """Every experiment, by name."""
        from runyard.experiment import Experiment

        return {e.name: Experiment._from_info(self, e) for e in self.metadata.list_experiments()}

    @property
    def datastores(self) -> dict[str, "Datastore"]:
        """Every datastore, by name (the default, ``workspaceblobstore``, always among them)."""
        from runyard.data.datastore import Datastore

        return {d.name: d for d in Datastore.list(self)}

    def get_default_datastore(self) -> "Datastore":
        from runyard.data.datastore import Datastore

        return Datastore.get_default(self)

    def set_default_datastore(self, name: str) -> None:
        self.metadata.set_default_datastore(name)

    @property
    def datasets(self) -> dict[str, "Dataset"]:
        """The latest version of every registered dataset, by name."""
        from runyard.data.dataset import Dataset

        return Dataset.get_all(self)

    @property
    def models(self) -> dict[str, "Model"]:
        """The latest version of every registered model, by name."""
        from runyard.model import Model

        latest: dict[str, Model] = {}
        while True:
            page = Model.list(self, latest=True, limit=500, offset=len(latest))
            latest.update((m.name, m) for m in page)
            if len(page) < 500:
                return latest

    @property
    def webservices(self) -> dict[str, "LocalWebservice"]:
        """Every deployed service, by name."""
        from runyard.deploy import LocalWebservice

        return {s.name: s for s in LocalWebservice.list(self)}

    @property
    def environments(self) -> dict[str, "Environment"]:
        """Registered environments and Azure's curated names runyard maps (see ``Environment.list``)."""
        from runyard.config.environment import Environment

        return Environment.list(self)

    def get_details(self) -> dict:
        """Azure's workspace details, for a local workspace."""
        return {"id": f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
                      f"runyard/workspaces/{self.name}",
                "name": self.name, "location": self.location, "subscriptionId": self.subscription_id,
                "resourceGroup": self.resource_group, "workspaceFolder": str(self.path),
                "trackingUri": self.tracking_uri, "artifactUri": self.artifact_uri}

    def get_run(self, run_id: str) -> "Run":
        from runyard.run import Run

        return Run._by_id(self, run_id)

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, path='{self.path}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and (self.tracking_uri, self.artifact_uri) == (other.tracking_uri, other.artifact_uri)

    def __hash__(self) -> int:
        return hash((self.tracking_uri, self.artifact_uri))

    def _read_or_write_config(self) -> dict:
        config = self.path / CONFIG_FILE
        if not config.exists():
            _write_json(config, {"name": _default_name(self.path)})
        return _read_config(config)


class _NoLogin:
    """Azure ML's authentication classes, accepted and ignored: a runyard workspace needs no login."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass


class InteractiveLoginAuthentication(_NoLogin):
    pass


class ServicePrincipalAuthentication(_NoLogin):
    pass


class AzureCliAuthentication(_NoLogin):
    pass


class MsiAuthentication(_NoLogin):
    pass


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
