"""Model packages: an image that serves models with runyard's scoring server (Azure ML's ``Model.package``,
``runyard deploy --image``), built offline on the local Docker engine.

    package = Model.package(ws, [model], inference_config, image_name="digits", image_label="1")
    package.wait_for_creation(show_output=True)      # package.location == "digits:1"
    service = LocalWebservice.deploy_from_image(ws, "digits", package)   # or: docker run --network host digits:1

The image is the environment's base image (``runyard/base:bookworm`` when it names none) with a venv in
``/opt/runyard/venv`` holding the environment's packages, runyard (copied: the image runs anywhere Docker does), FastAPI
and uvicorn, and ``/var/runyard/service`` holding the models, the scoring script's folder and ``service.json``. It
serves on 0.0.0.0:5001 unless ``RUNYARD_SERVICE_HOST``/``RUNYARD_SERVICE_PORT`` say otherwise;
``RUNYARD_SERVICE_KEYS=/path/keys.json`` (a mounted ``{"primary": …, "secondary": …}``) turns key auth on.
"""
from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import plugins
from runyard.deploy.service import SERVICE_PACKAGES, InferenceConfig, framework_environment, inference_config_of
from runyard.errors import ConfigError, DeploymentError

if TYPE_CHECKING:
    from runyard.model import Model
    from runyard.workspace import Workspace

SERVICE_DIR = "/var/runyard/service"
VENV = "/opt/runyard/venv"
DEFAULT_PORT = 5001  # Azure ML's inference images serve on 5001 as well
_NOCODE_PACKAGES = {"ScikitLearn": ("scikit-learn", "joblib", "numpy"), "Onnx": ("onnxruntime", "numpy"),
                    "TensorFlow": ("tensorflow", "numpy"), "Keras": ("tensorflow", "numpy"),
                    "PyTorch": ("torch", "numpy")}


class ModelPackage:
    """What ``Model.package`` returns: the image being built (``location``), its log, and its state."""

    def __init__(self, workspace: "Workspace", location: str) -> None:
        self.workspace, self.location = workspace, location
        self.state = "Running"  # Running → Succeeded | Failed, as Azure's
        self.image_id: str | None = None
        self.error: BaseException | None = None
        self._log: list[str] = []
        self._done = threading.Event()
    
    def _say(self, line: str) -> None:
        self._log.append(line)

    def get_logs(self) -> str:
        return "\n".join(self._log)

    def wait_for_creation(self, show_output: bool = False) -> None:
        """Wait until the image is built; raises DeploymentError (with the build's last lines) when it failed."""
        shown = 0
        while not self._done.wait(0.2 if show_output else None):
            if show_output:
                for line in self._log[shown:]:
                    print(line, flush=True)
                shown = len(self._log)
        if show_output:
            for line in self._log[shown:]:
                print(line, flush=True)
        if self.error is not None:
            raise DeploymentError(f"packaging {self.location} failed: {self.error}") from self.error

    def pull(self) -> str:
        """Azure copies the image to the local engine; it is built there already. Returns its name."""
        self.wait_for_creation()
        return self.location

    def save(self, output_directory: str) -> str:
        """Write the image as a ``docker save`` tarball (``docker load -i`` it on another machine); returns its path."""
        from runyard.environments import engine

        self.wait_for_creation()
        target = Path(output_directory).expanduser() / (self.location.replace("/", "_").replace(":", "_") + ".tar")
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = engine().connection(timeout=600)
        try:
            conn.request("GET", f"/images/{self.location}/get")
            resp = conn.getresponse()
            if resp.status != 200:
                raise DeploymentError(f"the engine could not export {self.location}: {resp.status} {resp.read()[:300]!r}")
            with open(target, "wb") as out:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        finally:
            conn.close()
        return str(target)

    def __repr__(self) -> str:
        return f"ModelPackage(location={self.location!r}, state={self.state!r})"


def package(workspace: "Workspace", models: Sequence["Model"], inference_config: Any = None,
            generate_dockerfile: bool = False, image_name: str | None = None, image_label: str | None = None,
            wait: bool = False) -> ModelPackage:
    """Build an image serving ``models`` (no ``inference_config``: from their framework, no code). Returns at once
    (``wait_for_creation`` waits) unless ``wait``. Bad input is an error now, before anything is built."""
    from runyard.environments import BASE_IMAGE, engine, image_id
    from runyard.environments.docker import check_image_name

    models = list(models)
    if not models:
        raise ConfigError("Model.package needs at least one model")
    if generate_dockerfile:
        raise ConfigError("generate_dockerfile=True: runyard builds the image itself on the local engine (no registry "
                          "to build a Dockerfile against) — package without it, then package.save(folder) exports the "
                          "image for `docker load`")
    inference = inference_config_of(inference_config) if inference_config is not None else InferenceConfig()
    if inference.entry_script is None and len(models) > 1:
        raise ConfigError("a no-code package serves one model; give an InferenceConfig with a scoring script to "
                          "serve several")
    environment = inference.environment
    if environment is None and inference.entry_script is None:
        environment = framework_environment(models[0])
    base = BASE_IMAGE
    if environment is not None and environment.docker.base_image and environment.docker.enabled:
        base = environment.docker.base_image
    found = engine()
    image_id(base, found)  # the base image must be local (a clear error listing the local ones)
    spec = environment.to_spec() if environment is not None else {}
    name = image_name or f"runyard-package/{models[0].name.lower()}"
    digest = hashlib.sha256(json.dumps([[m.id for m in models], spec, inference.entry_script, base],
                                       sort_keys=True, default=str).encode()).hexdigest()[:12]
    label = image_label or digest
    location = check_image_name(f"{name}:{label}")
    result = ModelPackage(workspace, location)
    stage = Path(tempfile.mkdtemp(prefix="runyard-package-"))
    try:
        _stage(stage, models, inference, spec, location)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise

    def build() -> None:
        try:
            result.image_id = _build(base, stage, spec, models, inference, location, result._say)
            result.state = "Succeeded"
        except BaseException as exc:  # noqa: BLE001 - handed to wait_for_creation
            result.error, result.state = exc, "Failed"
            result._say(f"failed: {exc}")
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            result._done.set()

    threading.Thread(target=build, name=f"runyard-package-{name}", daemon=True).start()
    if wait:
        result.wait_for_creation()
    return result


def _stage(stage: Path, models: Sequence["Model"], inference: InferenceConfig, spec: dict[str, Any],
           location: str) -> None:
    """The service folder the image gets: models' files, the scoring script's folder, service.json."""
    service = stage / "service"
    models_dir = service / "models"
    for model in models:
        model.download(str(models_dir / model.name / str(model.version)), exist_ok=True)
    inside = f"{SERVICE_DIR}/models"
    model_dir = f"{inside}/{models[0].name}/{models[0].version}" if len(models) == 1 else inside
    source = None
    if inference.entry_script is not None:
        shutil.copytree(inference.source_directory, service / "source",
                        ignore=shutil.ignore_patterns("__pycache__", ".git", ".runyard", "outputs", "logs"))
        source = f"{SERVICE_DIR}/source"
    described = [{"id": m.id, "framework": m.model_framework} for m in models]
    if inference.entry_script is None:
        from runyard.deploy.nocode import framework_of

        local = models_dir / models[0].name / str(models[0].version)
        described[0]["framework"] = framework_of(described[0], local)  # a model no framework can load fails now
    (service / "service.json").write_text(json.dumps({
        "name": location, "revision": 1, "port": DEFAULT_PORT, "host": "0.0.0.0", "python": f"{VENV}/bin/python",
        "auth_enabled": False, "max_request_mb": 100.0, "timeout_seconds": 60.0,
        "entry_script": inference.entry_script, "source_directory": source, "environment": spec or None,
        "model_ids": [m.id for m in models], "model_dir": model_dir, "tags": {}, "description": None,
        "compute_type": "docker", "sizing": {}, "models": described,
    }, indent=2), encoding="utf-8")


def _build(base: str, stage: Path, spec: dict[str, Any], models: Sequence["Model"], inference: InferenceConfig,
           location: str, say: Callable[[str], None]) -> str:
    from runyard.environments import CLIENT_REQUIREMENTS
    from runyard.environments.builder import client_dist_info, container_install_script, install_files, uv_binary
    from runyard.environments.docker import host_access
    from runyard.environments.images import commit_derived
    from runyard.environments.planning import RUNYARD_PACKAGE, install_instructions

    extra = [*CLIENT_REQUIREMENTS, *SERVICE_PACKAGES]
    if inference.entry_script is None:  # no code: the framework that loads the model, at this machine's versions
        framework = json.loads((stage / "service" / "service.json").read_text())["models"][0]["framework"]
        extra += [_pinned(p) for p in _NOCODE_PACKAGES.get(framework, ())]
    plan = install_instructions(spec, extra)
    requirements, constraints = install_files(stage, plan["install"], plan["constraints"])
    uv = uv_binary()
    access = host_access(plan["uv_options"], uv)
    env = {**access.env, "UV_CACHE_DIR": "/tmp/runyard-uv-cache"}  # root's files stay in the image, not the host's cache
    info = client_dist_info(stage)  # runyard is copied into the image: its version and entry points go with it
    script = "\n".join([
        container_install_script(VENV, requirements, constraints, plan["uv_options"], base, uv),
        f"SITE=$({VENV}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')",
        f'cp -r {shlex.quote(RUNYARD_PACKAGE.as_posix())} "$SITE/runyard"',
        'find "$SITE/runyard" -name __pycache__ -prune -exec rm -rf {} +',
        f'cp -r {shlex.quote(str(info))} "$SITE/"',
        f"mkdir -p {Path(SERVICE_DIR).parent} && rm -rf {SERVICE_DIR} && cp -r {stage}/service {SERVICE_DIR}",
        f"{VENV}/bin/python -c 'import runyard.deploy.server, fastapi, uvicorn' && echo 'the image can serve'",
    ])
    say(f"building {location} from {base}: {len(plan['install'])} package(s) into {VENV}, "
        f"{', '.join(m.id for m in models)} into {SERVICE_DIR}")
    labels = ['LABEL runyard.kind="model-package"', f'LABEL runyard.models="{",".join(m.id for m in models)}"']
    changes = [f"WORKDIR {SERVICE_DIR}", "ENV PYTHONUNBUFFERED=1", f"EXPOSE {DEFAULT_PORT}", *labels,
               f'CMD ["{VENV}/bin/python", "-m", "runyard.deploy.server", "{SERVICE_DIR}"]']
    return commit_derived(base, script, location, changes, read_only=[str(stage), *access.read_only,
                                                                     RUNYARD_PACKAGE.as_posix()],
                          env=env, say=say)


def _pinned(name: str) -> str:
    """``name==<this machine's version>`` (a pickled model loads with the version that saved it), else ``name``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name}=={version(name)}"
    except PackageNotFoundError:
        return name


plugins.register(plugins.FEATURES, "package", package)
