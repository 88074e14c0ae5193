"""The model registry (Azure ML's ``Model``): named, versioned, immutable model files with lineage.

    model = run.register_model("digits", model_path="outputs/model.pkl", model_framework=Model.Framework.SCIKITLEARN)
    Model.register(ws, model_path="local/model.pkl", model_name="digits", tags={"area": "mnist"})
    Model(ws, "digits"); Model(ws, "digits", version=2); Model(ws, "digits", alias="prod")
    Model.list(ws, name="digits"); model.download("here", exist_ok=True); model.set_alias("prod")
    Model.get_model_path("digits")            # inside a scoring script: the model's files in AZUREML_MODEL_DIR

A version's files are stored content-addressed (the snapshot store: each file once, whatever model or version
holds it) and never change; versions count up per name; aliases point at a version and move.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import plugins, validation
from runyard.errors import NotFound, ValidationError

if TYPE_CHECKING:
    from runyard.store.metadata.entities import ModelRecord
    from runyard.workspace import Workspace


@dataclass(frozen=True)
class ResourceConfiguration:
    """What a deployment of the model needs (recorded with the model; Azure's ``ResourceConfiguration``)."""

    cpu: float | None = None
    memory_in_gb: float | None = None
    gpu: int | None = None

    def serialize(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class _Framework:
    SCIKITLEARN = "ScikitLearn"
    TENSORFLOW = "TensorFlow"
    KERAS = "Keras"
    PYTORCH = "PyTorch"
    ONNX = "Onnx"
    CUSTOM = "Custom"


_FRAMEWORKS = {v.lower(): v for k, v in vars(_Framework).items() if not k.startswith("_")}


class Model:
    """A registered model version. ``Model(ws, name, version=None, alias=None)`` opens one (the latest by default)."""

    Framework = _Framework

    def __init__(self, workspace: "Workspace", name: str | None = None, id: str | None = None,
                 version: int | None = None, alias: str | None = None, *, _record: "ModelRecord | None" = None) -> None:
        if _record is None:
            if id is not None:  # Azure's "name:version"
                name, _, text = id.partition(":")
                version = int(text) if text else None
            if not name:
                raise ValidationError("Model(ws, name) needs the model's name (or id='name:version')")
            if version is not None and alias is not None:
                raise ValidationError("give a model's version or an alias, not both")
            _record = workspace.metadata.get_model(name, version, alias)
        self.workspace = workspace
        self._record = _record

    # -- what it is ---------------------------------------------------------------------------------
    name = property(lambda self: self._record.name)
    version = property(lambda self: self._record.version)
    id = property(lambda self: f"{self._record.name}:{self._record.version}")
    tags = property(lambda self: dict(self._record.tags))
    properties = property(lambda self: dict(self._record.properties))
    description = property(lambda self: self._record.description)
    model_framework = property(lambda self: self._record.framework)
    model_framework_version = property(lambda self: self._record.framework_version)
    run_id = property(lambda self: self._record.run_id)
    aliases = property(lambda self: list(self._record.aliases))
    created_time = property(lambda self: self._record.created_at)

    @property
    def resource_configuration(self) -> ResourceConfiguration | None:
        rc = self._record.details.get("resource_configuration")
        return ResourceConfiguration(**rc) if rc else None

    @property
    def datasets(self) -> dict[str, list[str]]:
        """Lineage: datasets it was trained on, by scenario (``[("training", dataset)]`` at registration)."""
        return dict(self._record.details.get("datasets") or {})

    @property
    def files(self) -> list[dict[str, Any]]:
        """Its files: relative path, size, sha256."""
        return list(self._record.details.get("files") or [])

    def serialize(self) -> dict[str, Any]:
        r = self._record
        return {"id": self.id, "name": r.name, "version": r.version, "framework": r.framework,
                "frameworkVersion": r.framework_version, "description": r.description, "tags": r.tags,
                "properties": r.properties, "runId": r.run_id, "aliases": list(r.aliases), "createdTime": r.created_at,
                "path": r.path, **r.details}

    def __repr__(self) -> str:
        return f"Model(name={self.name!r}, version={self.version}, framework={self.model_framework!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (self.id, self.workspace) == (other.id, other.workspace)

    # -- registering ----------------------------------------------------------------------------------
    @staticmethod
    def register(workspace: "Workspace", model_path: str | os.PathLike, model_name: str,
                 tags: Mapping[str, Any] | None = None, properties: Mapping[str, Any] | None = None,
                 description: str | None = None, model_framework: str | None = None,
                 model_framework_version: str | None = None,
                 resource_configuration: ResourceConfiguration | None = None,
                 datasets: Sequence[tuple[str, Any]] | None = None, _run_id: str | None = None) -> "Model":
        """Register a local file or folder as the next version of ``model_name``."""
        from runyard.store import snapshots as snapshot

        name = validation.key(model_name, "model name")
        source = Path(model_path).expanduser()
        if not source.exists():
            raise NotFound(f"model_path {str(source)!r} does not exist")
        framework = _framework(model_framework)
        with tempfile.TemporaryDirectory(prefix="runyard-model-") as tmp:
            folder = source
            if source.is_file():  # a single file: registered as a folder holding it
                folder = Path(tmp) / "files"
                folder.mkdir()
                shutil.copy2(source, folder / source.name)
            snap = snapshot.take(folder, everything=True)
            if not snap.files:
                raise ValidationError(f"model_path {str(source)!r} holds no files")
            snapshot.store(snap, workspace.artifacts)
        details: dict[str, Any] = {"files": [{"path": p, "size": size, "sha256": sha}
                                             for p, (sha, size, _mode) in sorted(snap.files.items())]}
        if resource_configuration is not None:
            details["resource_configuration"] = resource_configuration.serialize()
        if datasets:
            details["datasets"] = _dataset_refs(datasets)
        record = workspace.metadata.register_model(name, {
            "content_id": snap.id, "path": source.name, "framework": framework,
            "framework_version": str(model_framework_version) if model_framework_version is not None else None,
            "description": description, "run_id": _run_id,
            "tags": {validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in (tags or {}).items()},
            "properties": {validation.key(k, "property key"): validation.text(v, f"property {k!r}")
                           for k, v in (properties or {}).items()},
            "details": details,
        })
        return Model(workspace, _record=record)

    @staticmethod
    def list(workspace: "Workspace", name: str | None = None, tags: Mapping[str, str] | None = None,
             run_id: str | None = None, latest: bool = False, limit: int = 100, offset: int = 0) -> list["Model"]:
        """Registered versions, newest first (paginated); ``latest``: each name's newest only."""
        return [Model(workspace, _record=r) for r in workspace.metadata.list_models(
            name=name, run_id=run_id, tags=dict(tags or {}), latest=latest, limit=limit, offset=offset)]

    # -- using -------------------------------------------------------------------------------------------
    def download(self, target_dir: str | os.PathLike = ".", exist_ok: bool = False, exists_ok: bool | None = None,
                 exit_on_error: bool = True) -> str:
        """Write the model's files into ``target_dir``; returns the path of the file or folder registered.
        ``exists_ok`` is the older SDK's spelling of ``exist_ok``."""
        from runyard.store import snapshots as snapshot

        exist_ok = bool(exist_ok or exists_ok)
        target = Path(target_dir).expanduser()
        dest = target / self._record.path
        single = len(self.files) == 1 and self.files[0]["path"] == self._record.path
        if dest.exists() and not exist_ok:
            raise ValidationError(f"{dest} exists already; pass exist_ok=True to overwrite it")
        with tempfile.TemporaryDirectory(prefix="runyard-model-", dir=target if target.is_dir() else None) as tmp:
            snapshot.materialize(self._record.content_id, self.workspace.artifacts, Path(tmp) / "m")
            target.mkdir(parents=True, exist_ok=True)
            if dest.is_dir():
                shutil.rmtree(dest)
            shutil.move(str(Path(tmp) / "m" / self._record.path) if single else str(Path(tmp) / "m"), dest)
        return str(dest)

    @staticmethod
    def deploy(workspace: "Workspace", name: str, models: Sequence["Model"], inference_config: Any = None,
               deployment_config: Any = None, deployment_target: Any = None, overwrite: bool = False) -> Any:
        """Serve ``models`` as a local web service (``runyard.deploy``); with no ``inference_config`` the model's
        framework serves it (no code). Returns at once; ``service.wait_for_deployment()`` waits."""
        if deployment_target not in (None, "local"):
            raise ValidationError("runyard deploys to this machine (LocalWebservice); deployment_target must be None")
        return plugins.load(plugins.FEATURES, "deploy")(workspace, name, list(models), inference_config,
                                                        deployment_config, overwrite)

    @staticmethod
    def package(workspace: "Workspace", models: Sequence["Model"], inference_config: Any = None,
                generate_dockerfile: bool = False, image_name: str | None = None, image_label: str | None = None) -> Any:
        """Build a container image that serves ``models`` (``runyard.deploy.package``) on the local Docker engine;
        with no ``inference_config`` the model's framework serves it (no code). Returns a ModelPackage at once:
        ``wait_for_creation()`` waits, ``location`` is the image's name, ``save(folder)`` exports it."""
        return plugins.load(plugins.FEATURES, "package")(workspace, list(models), inference_config,
                                                         generate_dockerfile, image_name, image_label)

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` (e.g. "prod") at this version; an alias names one version of a model at a time."""
        self.workspace.metadata.set_model_alias(self.name, validation.key(alias, "alias"), self.version)
        self._refresh()

    def remove_alias(self, alias: str) -> None:
        self.workspace.metadata.set_model_alias(self.name, alias, None)
        self._refresh()

    def add_tags(self, tags: Mapping[str, Any]) -> None:
        clean = {validation.key(k, "tag key"): validation.text(v, f"tag {k!r}") for k, v in tags.items()}
        self._record = self.workspace.metadata.update_model(self.name, self.version, tags={**self.tags, **clean})

    def remove_tags(self, keys: Sequence[str]) -> None:
        self._record = self.workspace.metadata.update_model(
            self.name, self.version, tags={k: v for k, v in self.tags.items() if k not in set(keys)})

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        clean = {validation.key(k, "property key"): validation.text(v, f"property {k!r}")
                 for k, v in properties.items()}
        self._record = self.workspace.metadata.update_model(self.name, self.version, properties=clean)

    def _refresh(self) -> None:
        self._record = self.workspace.metadata.get_model(self.name, self.version)

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: "Workspace | None" = None) -> str:
        """Inside a scoring script: where the model's files are (``AZUREML_MODEL_DIR`` / ``RUNYARD_MODEL_DIR``, set by
        the service), else — with ``_workspace`` — a local download of that version."""
        folder = os.environ.get("RUNYARD_MODEL_DIR") or os.environ.get("AZUREML_MODEL_DIR")
        if folder:
            # One model: AZUREML_MODEL_DIR holds its registered file or folder. Several: <name>/<version>/… there.
            base = Path(folder)
            here = base
            if (base / model_name).is_dir():
                versions = sorted((p for p in (base / model_name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
                chosen = base / model_name / str(version) if version is not None else (versions[-1] if versions else None)
                here = chosen if chosen is not None and chosen.is_dir() else base / model_name
            elif version is not None and not base.is_dir():
                raise NotFound(f"model {model_name!r} is not in the model folder {base}")
            entries = list(here.iterdir()) if here.is_dir() else []
            if not entries:
                raise NotFound(f"model {model_name!r} is not in the model folder {base}")
            return str(entries[0]) if len(entries) == 1 else str(here)
        if _workspace is None:
            raise NotFound("Model.get_model_path: no AZUREML_MODEL_DIR/RUNYARD_MODEL_DIR in this process (it is set "
                           "in a deployed service); pass _workspace= to download the model here")
        model = Model(_workspace, model_name, version=version)
        return model.download(tempfile.mkdtemp(prefix="runyard-model-"), exist_ok=True)


def _framework(value: str | None) -> str | None:
    if value is None:
        return None
    found = _FRAMEWORKS.get(str(value).lower())
    if found is None:
        raise ValidationError(f"model_framework {value!r} is not one of {', '.join(_FRAMEWORKS.values())}")
    return found


def _dataset_refs(datasets: Sequence[tuple[str, Any]]) -> dict[str, list[str]]:
    """``[("training", dataset), …]`` → scenario → dataset ids ("name:version" for registered datasets)."""
    out: dict[str, list[str]] = {}
    for item in datasets:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValidationError("datasets must be (scenario, dataset) pairs, e.g. [('training', ds)]")
        scenario, dataset = item
        name = getattr(dataset, "name", None)
        version = getattr(dataset, "version", None)
        ref = f"{name}:{version}" if name and version else (name or str(getattr(dataset, "id", dataset)))
        out.setdefault(validation.key(str(scenario), "dataset scenario"), []).append(ref)
    return out


def register_from_run(run, model_name: str, model_path: str, **kwargs: Any) -> Model:
    """``run.register_model``: the run's stored files under ``model_path`` (e.g. ``outputs/model``) become a version,
    with the run as its lineage."""
    path = validation.artifact_path(model_path.rstrip("/"))
    names = [a.path for a in run.workspace.metadata.list_artifacts(run.id, path)]
    files = [n for n in names if n == path or n.startswith(path + "/")]
    if not files:
        raise NotFound(f"run {run.id} has no file or folder {path!r} (its files: "
                       + (", ".join(sorted(names)[:10]) or "none under that prefix") + ")")
    if not kwargs.get("datasets"):  # lineage: the datasets the run consumed, as its training data
        consumed = [i.dataset_id for i in run.workspace.metadata.list_run_inputs(run.id) if i.dataset_id]
        if consumed:
            dataset = plugins.load(plugins.FEATURES, "Dataset")
            kwargs["datasets"] = [("training", dataset.get_by_id(run.workspace, d)) for d in consumed]
    with tempfile.TemporaryDirectory(prefix="runyard-model-") as tmp:
        for name in files:
            dest = Path(tmp) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            run.download_file(name, dest)
        return Model.register(run.workspace, Path(tmp) / path, model_name, _run_id=run.id, **kwargs)


def __getattr__(name: str):
    """``from azureml.core.model import InferenceConfig`` ported: it lives in runyard.deploy."""
    if name == "InferenceConfig":
        return plugins.load(plugins.FEATURES, "InferenceConfig")
    raise AttributeError(f"module 'runyard.model' has no attribute {name!r}")


plugins.register(plugins.FEATURES, "Model", Model)  # Workspace.models (a layer below) lists models through it
