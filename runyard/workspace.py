"""The Workspace: a folder holding the run history's configuration, database and artifacts (DESIGN.md §5)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import env_vars, plugins
from runyard.errors import ConfigError
from runyard.store.workspace_context import (
    CONFIG_DIR,
    CONFIG_FILE,
    WorkspaceContext,
    _find_config,
    _write_project_config,
    default_home,
    workspace_path_from_uri,
)

if TYPE_CHECKING:
    from runyard.compute.api import ComputeTarget
    from runyard.config.environment import Environment
    from runyard.context.logger import MetricLogger

# What the workspace hands out from the layers above it (runyard.run, runyard.model, runyard.data, runyard.deploy)
# it gets through runyard.plugins; its annotations name those classes as text.
Experiment = Run = Model = Datastore = Dataset = LocalWebservice = Any


class Workspace(WorkspaceContext):
    """A runyard workspace.

    Args:
        path: the workspace folder (created when missing). It holds ``config.json``, and by default
            ``runyard.db`` (SQLite) and ``artifacts/``.
        tracking_uri: metadata store URL; overrides ``config.json`` (``sqlite:///…``, ``postgresql+psycopg://…``).
        artifact_uri: artifact store root (folder or fsspec URL); overrides ``config.json``.
    """

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

    @property
    def logger(self) -> "MetricLogger":
        from runyard.context.logger import logger_for

        return logger_for(self.metadata, self.path / "spool", self.journal_dir)

    # -- contents -----------------------------------------------------------------------------
    @property
    def compute_targets(self) -> dict[str, "ComputeTarget"]:
        """Every compute target, by name: ``local`` and those made with ``ComputeTarget.create``."""
        from runyard.compute.registry import all_targets

        return all_targets(self)

    @property
    def experiments(self) -> dict[str, Experiment]:
        """Every experiment, by name."""
        experiment = plugins.load(plugins.FEATURES, "Experiment")  # runyard.run's: the layer above hands it down
        return {e.name: experiment._from_info(self, e) for e in self.metadata.list_experiments()}

    @property
    def datastores(self) -> dict[str, Datastore]:
        """Every datastore, by name (the default, ``workspaceblobstore``, always among them)."""
        return {d.name: d for d in plugins.load(plugins.FEATURES, "Datastore").list(self)}

    def get_default_datastore(self) -> Datastore:
        return plugins.load(plugins.FEATURES, "Datastore").get_default(self)

    def set_default_datastore(self, name: str) -> None:
        self.metadata.set_default_datastore(name)

    @property
    def datasets(self) -> dict[str, Dataset]:
        """The latest version of every registered dataset, by name."""
        return plugins.load(plugins.FEATURES, "Dataset").get_all(self)

    @property
    def models(self) -> dict[str, Model]:
        """The latest version of every registered model, by name."""
        model = plugins.load(plugins.FEATURES, "Model")
        latest: dict[str, Model] = {}
        while True:
            page = model.list(self, latest=True, limit=500, offset=len(latest))
            latest.update((m.name, m) for m in page)
            if len(page) < 500:
                return latest

    @property
    def webservices(self) -> dict[str, LocalWebservice]:
        """Every deployed service, by name."""
        return {s.name: s for s in plugins.load(plugins.FEATURES, "LocalWebservice").list(self)}

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

    def get_run(self, run_id: str) -> Run:
        return plugins.load(plugins.FEATURES, "Run")._by_id(self, run_id)

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


