"""Local web services: a model served by a process of its own (``runyard.deploy.server``), detached from the
deploying one, with its state in ``WORKSPACE/services/<name>/``: ``service.json`` (what it serves), ``keys.json``,
``models/`` (the models' files), ``service.log`` and ``pid``."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import plugins, validation
from runyard.errors import ConfigError, DeploymentError, NotFound, warn

if TYPE_CHECKING:
    from runyard.config.environment import Environment
    from runyard.model import Model
    from runyard.workspace import Workspace

SERVICE_PACKAGES = ("fastapi>=0.100", "uvicorn>=0.23", "orjson>=3.9")  # added to a built environment that serves a model


@dataclass
class InferenceConfig:
    """How to serve: a scoring script (``init()``, ``run(raw_data)``) in ``source_directory``, in ``environment``
    (default: the deploying interpreter, which needs ``runyard[deploy]``)."""

    entry_script: str | None = None
    source_directory: str | None = None
    environment: "Environment | None" = None
    runtime: str | None = None  # accepted for Azure compatibility ("python")

    def __post_init__(self) -> None:
        if self.entry_script is not None:
            source = Path(self.source_directory or ".").expanduser().absolute()
            if not (source / self.entry_script).is_file():
                raise ConfigError(f"entry_script {self.entry_script!r} is not a file in {source}")
            self.source_directory = str(source)


@dataclass
class LocalWebserviceDeploymentConfiguration:
    port: int | None = None
    auth_enabled: bool = False
    max_request_size_mb: float = 100.0
    timeout_seconds: float = 60.0
    tags: dict[str, str] | None = None
    description: str | None = None
    azure: dict[str, Any] = field(default_factory=dict)  # ACI/AKS sizing (cpu_cores, memory_gb…): recorded only
    workers: int = 1  # server processes, each with the model loaded (Azure's inference server: WORKER_COUNT)

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or not 1 <= self.workers <= 64:
            raise ConfigError(f"workers must be a whole number from 1 to 64, got {self.workers!r}")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 1 <= self.port <= 65535):
            raise ConfigError(f"port must be a number between 1 and 65535, got {self.port!r}")
        for name in ("max_request_size_mb", "timeout_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{name} must be a positive number, got {value!r}")


def services_root(workspace: "Workspace") -> Path:
    return workspace.path / "services"


class LocalWebservice:
    """A deployed service on this machine. ``LocalWebservice(ws, name)`` opens an existing one."""

    @staticmethod
    def deploy_configuration(port: int | None = None, auth_enabled: bool = False, max_request_size_mb: float = 100.0,
                             timeout_seconds: float = 60.0, workers: int = 1) -> LocalWebserviceDeploymentConfiguration:
        """``workers``: server processes sharing the port, each with its own copy of the model — for a machine with
        cores to spare (the inference environment's ``WORKER_COUNT`` variable, Azure's, sets it too)."""
        return LocalWebserviceDeploymentConfiguration(port, auth_enabled, max_request_size_mb, timeout_seconds,
                                                      workers=workers)

    def __init__(self, workspace: "Workspace", name: str) -> None:
        self.workspace, self.name = workspace, name
        self.dir = services_root(workspace) / name
        if not (self.dir / "service.json").is_file():
            names = sorted(p.name for p in services_root(workspace).glob("*") if (p / "service.json").is_file())
            raise NotFound(f"no service named {name!r} in this workspace"
                           + (f"; services: {', '.join(names)}" if names else ""))

    @staticmethod
    def list(workspace: "Workspace") -> list["LocalWebservice"]:
        root = services_root(workspace)
        return [LocalWebservice(workspace, p.name) for p in sorted(root.glob("*")) if (p / "service.json").is_file()]

    # -- what it is ------------------------------------------------------------------------------------
    @property
    def spec(self) -> dict[str, Any]:
        return json.loads((self.dir / "service.json").read_text(encoding="utf-8"))

    @property
    def port(self) -> int:
        return self.spec["port"]

    @property
    def scoring_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    @property
    def swagger_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/swagger.json"

    @property
    def models(self) -> list[str]:
        return list(self.spec["model_ids"])

    @property
    def auth_enabled(self) -> bool:
        return bool(self.spec["auth_enabled"])

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.spec.get("tags") or {})

    @property
    def description(self) -> str | None:
        return self.spec.get("description")

    @property
    def compute_type(self) -> str:
        return self.spec.get("compute_type") or "Local"

    # -- Azure's older deployment calls (Webservice is this class) -----------------------------------------
    @staticmethod
    def deploy_from_model(workspace: "Workspace", name: str, models: list["Model"], image_config: Any,
                          deployment_config: Any = None, deployment_target: Any = None,
                          overwrite: bool = False) -> "LocalWebservice":
        """``Webservice.deploy_from_model(ws, name, [model], ContainerImage.image_configuration(...), aci_config)``:
        the image configuration's scoring script and conda file become the service's InferenceConfig."""
        if deployment_target not in (None, "local"):
            raise ConfigError("runyard deploys to this machine; deployment_target must be None")
        return deploy(workspace, name, list(models), inference_config_of(image_config), deployment_config, overwrite)

    @staticmethod
    def deploy_from_image(workspace: "Workspace", name: str, image: Any, deployment_config: Any = None,
                          deployment_target: Any = None, overwrite: bool = False) -> "LocalWebservice":
        """A service from a container image — a ``Model.package`` (or its image's name), run on the local Docker
        engine — or from Azure's older ``Image.create(...)`` (a scoring script and environment, run here)."""
        if isinstance(image, str) or (hasattr(image, "location") and not hasattr(image, "image_config")):
            location = image if isinstance(image, str) else image.pull()
            return deploy_image(workspace, name, location, deployment_config, overwrite)
        return LocalWebservice.deploy_from_model(workspace, name, image.models, image.image_config, deployment_config,
                                                 deployment_target, overwrite)

    def _pid(self) -> int | None:
        import psutil

        try:
            pid, started = (self.dir / "pid").read_text().split()
            proc = psutil.Process(int(pid))
            if abs(proc.create_time() - float(started)) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc.pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    @property
    def state(self) -> str:
        """Healthy (answers), Transitioning (starting), Unhealthy (running, not answering), Failed (exited)."""
        if self._pid() is None:
            return "Failed" if (self.dir / "pid").exists() else "Stopped"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:
                return "Healthy" if resp.status == 200 else "Unhealthy"
        except (urllib.error.URLError, OSError):
            started = float((self.dir / "pid").read_text().split()[1])
            return "Transitioning" if time.time() - started < 120 else "Unhealthy"

    def __repr__(self) -> str:
        return f"LocalWebservice(name={self.name!r}, port={self.port}, models={self.models})"

    # -- using ---------------------------------------------------------------------------------------------
    def get_keys(self) -> tuple[str, str]:
        if not self.auth_enabled:
            raise ConfigError(f"service {self.name!r} has no keys: it was deployed with auth_enabled=False")
        keys = json.loads((self.dir / "keys.json").read_text(encoding="utf-8"))
        return keys["primary"], keys["secondary"]

    def regen_key(self, key: str) -> None:
        """A new ``Primary`` or ``Secondary`` key; the service takes it at its next request (no restart)."""
        which = str(key).lower()
        if which not in ("primary", "secondary"):
            raise ConfigError(f"regen_key takes 'Primary' or 'Secondary', got {key!r}")
        primary, secondary = self.get_keys()
        _write_keys(self.dir, **{"primary": primary, "secondary": secondary, which: secrets.token_urlsafe(32)})

    def run(self, input_data: str | bytes | dict | list) -> Any:
        """Score ``input_data`` (JSON text, or an object sent as JSON); returns the parsed response."""
        body = input_data if isinstance(input_data, bytes) else (
            input_data.encode() if isinstance(input_data, str) else json.dumps(input_data).encode())
        headers = {"Content-Type": "application/json"}
        if self.auth_enabled:
            headers["Authorization"] = f"Bearer {self.get_keys()[0]}"
        request = urllib.request.Request(self.scoring_uri, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.spec["timeout_seconds"] + 10) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise DeploymentError(f"service {self.name!r} answered {exc.code}: {detail[:1000]}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DeploymentError(f"service {self.name!r} at {self.scoring_uri} does not answer ({exc}); state "
                                  f"{self.state}; see service.get_logs()") from None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def get_logs(self, num_lines: int = 5000) -> str:
        path = self.dir / "service.log"
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-num_lines:])

    def wait_for_deployment(self, show_output: bool = False, timeout_sec: float = 300) -> None:
        """Wait until the service answers; raise DeploymentError with its log's last lines if it fails."""
        deadline = time.monotonic() + timeout_sec
        last = None
        while True:
            state = self.state
            if show_output and state != last:
                print(f"{self.name}: {state}", flush=True)
                last = state
            if state == "Healthy":
                return
            if state in ("Failed", "Stopped"):
                raise DeploymentError(f"service {self.name!r} failed to start:\n{self.get_logs(25)}")
            if time.monotonic() > deadline:
                raise DeploymentError(f"service {self.name!r} did not answer within {timeout_sec:g} s "
                                      f"(state {state}):\n{self.get_logs(25)}")
            time.sleep(0.1)

    def update(self, models: list["Model"] | None = None, inference_config: InferenceConfig | None = None,
               auth_enabled: bool | None = None) -> None:
        """Serve other model versions (or another scoring script); the service restarts on the same port."""
        spec = self.spec
        if spec.get("image"):
            raise ConfigError(f"service {self.name!r} runs image {spec['image']}: package the new models "
                              "(Model.package) and deploy that image with overwrite=True")
        self._stop()
        models = models if models is not None else [_model_of(self.workspace, m) for m in spec["model_ids"]]
        config = LocalWebserviceDeploymentConfiguration(spec["port"], spec["auth_enabled"] if auth_enabled is None
                                                        else auth_enabled, spec["max_request_mb"],
                                                        spec["timeout_seconds"], workers=spec.get("workers", 1))
        inference = inference_config or InferenceConfig(spec.get("entry_script"), spec.get("source_directory"),
                                                        _environment_of(spec))
        _prepare(self.workspace, self.name, models, inference, config, revision=spec.get("revision", 1) + 1,
                 keep_keys=True)
        _start(self.dir)
        self.wait_for_deployment()

    def delete(self) -> None:
        """Stop the service (its port is free when this returns) and remove it."""
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop(self, grace: float = 10.0) -> None:
        pid = self._pid()
        if pid is None:
            return
        import psutil

        proc = psutil.Process(pid)
        try:
            os.killpg(pid, signal.SIGTERM)
            proc.wait(grace)
        except psutil.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            proc.wait(5)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        _reap(pid)
        self._remove_container()

    def _remove_container(self) -> None:
        """An image's service: its container goes with its docker client (which a kill may leave it without)."""
        container = self.spec.get("container") if (self.dir / "service.json").exists() else None
        if container:
            from runyard.environments.docker import DockerError, Engine

            try:
                Engine.from_env().remove(container)
            except (OSError, DockerError):
                pass


def deploy(workspace: "Workspace", name: str, models: list["Model"], inference_config: InferenceConfig | None = None,
           deployment_config: LocalWebserviceDeploymentConfiguration | None = None,
           overwrite: bool = False) -> LocalWebservice:
    """``Model.deploy``: start a service of ``models``; returns at once (``wait_for_deployment`` waits)."""
    if not models:
        raise ConfigError("deploy needs at least one model")
    folder = _claim(workspace, name, overwrite)
    inference = inference_config or InferenceConfig()
    if inference.entry_script is None and inference.environment is None:
        inference = InferenceConfig(environment=framework_environment(models[0]))
    if inference.entry_script is None and len(models) > 1:
        raise ConfigError("a no-code deployment serves one model; give an InferenceConfig with a scoring script "
                          "to serve several")
    config = deployment_config or LocalWebserviceDeploymentConfiguration()
    try:
        _prepare(workspace, name, models, inference, config, revision=1, keep_keys=False)
        _start(folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return LocalWebservice(workspace, name)


Webservice = LocalWebservice  # Azure's name for listing and opening services


def inference_config_of(config: Any) -> InferenceConfig:
    """An InferenceConfig from what Azure's calls accept in its place (``ContainerImage.image_configuration(...)``,
    which says its own, or an InferenceConfig itself)."""
    if isinstance(config, InferenceConfig):
        return config
    if callable(getattr(config, "inference_config", None)):
        return config.inference_config()
    raise ConfigError(f"expected ContainerImage.image_configuration(...) or an InferenceConfig, got {type(config).__name__}")


_ENVIRONMENT_FRAMEWORKS = {"ScikitLearn": "SKLearn", "TensorFlow": "TensorFlow", "Keras": "TensorFlow",
                           "PyTorch": "PyTorch"}


def framework_environment(model: "Model"):
    """A no-code deployment of a model registered with its framework version is served from an environment with that
    framework pinned (built once, cached); without a version, the deploying interpreter serves it (None)."""
    name = _ENVIRONMENT_FRAMEWORKS.get(model.model_framework or "")
    if name is None or not model.model_framework_version:
        return None
    from runyard.config.environment import Environment

    env = Environment(f"serve-{name.lower()}-{model.model_framework_version}")
    env.python.framework = {"name": name, "version": str(model.model_framework_version)}
    env.python.conda_dependencies.add_pip_package("numpy")
    return env


# -- internals ---------------------------------------------------------------------------------------------------
def _model_of(workspace, model_id: str):
    from runyard.model import Model

    return Model(workspace, id=model_id)


def _environment_of(spec: dict[str, Any]):
    if not spec.get("environment"):
        return None
    from runyard.config.environment import Environment

    return Environment.from_spec(spec["environment"])


def _write_keys(folder: Path, primary: str, secondary: str) -> None:
    path = folder / "keys.json"
    tmp = folder / "keys.json.tmp"
    tmp.write_text(json.dumps({"primary": primary, "secondary": secondary}), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _claim(workspace: "Workspace", name: str, overwrite: bool) -> Path:
    """The folder of a new service ``name`` (an existing one is deleted first when ``overwrite``)."""
    validation.key(name, "service name")
    folder = services_root(workspace) / name
    if (folder / "service.json").exists():
        if not overwrite:
            raise ConfigError(f"a service named {name!r} exists; delete it, update it, or pass overwrite=True")
        LocalWebservice(workspace, name).delete()
    return folder


def _port(config: LocalWebserviceDeploymentConfiguration) -> int:
    """The configured port when it is free on 127.0.0.1, else an error; a free one when none is configured."""
    if config.port is None:
        from runyard.runtime.resources import free_ports

        return free_ports(1)[0]
    if not _port_is_free(config.port):
        raise DeploymentError(f"port {config.port} on 127.0.0.1 is in use: choose another port, or leave it out")
    return config.port


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT does not count
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _interpreter(workspace: "Workspace", environment, log) -> str:
    """The Python that serves: a built environment (with FastAPI and uvicorn added) or a given/current one."""
    from runyard import environments

    if environment is None:
        python = sys.executable
    else:
        from runyard.config.environment import Environment

        served = Environment.from_spec(environment.to_spec())  # a copy: the caller's environment is left as it is
        if not served.python.user_managed_dependencies:
            for package in SERVICE_PACKAGES:
                served.python.conda_dependencies.add_pip_package(package)
        spec = served.to_spec()
        plan = environments.plan(environments.env_root(workspace), spec, False, workspace.tracking_uri)
        for notice in plan.warnings:  # e.g. Azure SDK packages left out of the environment
            log(f"warning: {notice}")
            warn(notice)
        if plan.key is not None:
            environments.ensure(plan, log)
        python = plan.python
    probe = subprocess.run([python, "-c", "import fastapi, uvicorn"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise DeploymentError(f"{python} cannot serve: it lacks FastAPI/uvicorn — pip install 'runyard[deploy]' "
                              "there, or give the InferenceConfig an environment runyard builds")
    return python


def _prepare(workspace: "Workspace", name: str, models: list["Model"], inference: InferenceConfig,
             config: LocalWebserviceDeploymentConfiguration, revision: int, keep_keys: bool) -> None:
    """Write the service's folder: models' files, keys, service.json."""
    folder = services_root(workspace) / name
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "service.log", "a", encoding="utf-8") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        port = _port(config)
        models_dir = folder / "models"
        shutil.rmtree(models_dir, ignore_errors=True)
        for model in models:
            model.download(models_dir / model.name / str(model.version), exist_ok=True)
        model_dir = models_dir / models[0].name / str(models[0].version) if len(models) == 1 else models_dir
        python = _interpreter(workspace, inference.environment, log)
        if config.auth_enabled and not (keep_keys and (folder / "keys.json").exists()):
            _write_keys(folder, secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        spec = {"name": name, "revision": revision, "port": port, "host": "127.0.0.1", "python": python,
                "auth_enabled": config.auth_enabled, "max_request_mb": config.max_request_size_mb,
                "timeout_seconds": config.timeout_seconds, "entry_script": inference.entry_script,
                "source_directory": inference.source_directory,
                "environment": inference.environment.to_spec() if inference.environment is not None else None,
                "model_ids": [m.id for m in models], "model_dir": str(model_dir), "tags": dict(config.tags or {}),
                "description": config.description, "compute_type": config.azure.get("compute_type"),
                "sizing": {k: v for k, v in config.azure.items() if k != "compute_type"},
                "models": [{"id": m.id, "framework": m.model_framework} for m in models],
                "workers": _workers(config, inference.environment)}
        if inference.entry_script is None:
            from runyard.deploy.nocode import framework_of

            framework_of(spec["models"][0], Path(model_dir))  # a model no framework can load fails now
        (folder / "service.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
        log(f"revision {revision}: {', '.join(spec['model_ids'])} on 127.0.0.1:{port} with {python}")


def _workers(config: LocalWebserviceDeploymentConfiguration, environment) -> int:
    """The configuration's worker count, else the environment's ``WORKER_COUNT`` (Azure's inference server reads it)."""
    given = (environment.environment_variables or {}).get("WORKER_COUNT") if environment is not None else None
    if config.workers != 1 or given is None:
        return config.workers
    try:
        return LocalWebserviceDeploymentConfiguration(workers=int(given)).workers
    except ValueError:
        raise ConfigError(f"WORKER_COUNT must be a whole number from 1 to 64, got {given!r}") from None


def deploy_image(workspace: "Workspace", name: str, image: str, deployment_config: Any = None,
                 overwrite: bool = False) -> LocalWebservice:
    """A service that runs ``image`` (a model package) on the local engine, on 127.0.0.1:PORT (host network)."""
    from runyard.environments.docker import local_image

    validation.key(name, "service name")
    inspected = local_image(image)  # raises, listing the local images
    labels = (inspected.get("Config") or {}).get("Labels") or {}
    if labels.get("runyard.kind") != "model-package":
        raise ConfigError(f"image {image!r} is not a model package (Model.package / runyard deploy --image builds one)")
    config = deployment_config or LocalWebserviceDeploymentConfiguration()
    folder = _claim(workspace, name, overwrite)
    port = _port(config)
    folder.mkdir(parents=True, exist_ok=True)
    if config.auth_enabled:
        _write_keys(folder, secrets.token_urlsafe(32), secrets.token_urlsafe(32))
    model_ids = [m for m in labels.get("runyard.models", "").split(",") if m]
    spec = {"name": name, "revision": 1, "port": port, "host": "127.0.0.1", "image": image,
            "container": f"runyard-service-{name}", "auth_enabled": config.auth_enabled,
            "max_request_mb": config.max_request_size_mb, "timeout_seconds": config.timeout_seconds,
            "model_ids": model_ids, "tags": dict(config.tags or {}), "description": config.description,
            "compute_type": "docker", "sizing": {}, "models": [{"id": m} for m in model_ids]}
    (folder / "service.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    try:
        _start(folder)
    except BaseException:
        LocalWebservice(workspace, name).delete()
        raise
    return LocalWebservice(workspace, name)


def _start(folder: Path) -> None:
    import psutil

    spec = json.loads((folder / "service.json").read_text(encoding="utf-8"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[2]),
                                                     os.environ.get("PYTHONPATH", "")) if p)}
    argv = _container_argv(folder, spec) if spec.get("image") else [spec["python"], "-m", "runyard.deploy.server",
                                                                     str(folder)]
    with open(folder / "service.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(folder),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True)
    (folder / "pid").write_text(f"{proc.pid} {psutil.Process(proc.pid).create_time()}")
    import threading

    threading.Thread(target=proc.wait, name=f"runyard-service-{proc.pid}", daemon=True).start()  # no zombie


def _container_argv(folder: Path, spec: dict[str, Any]) -> list[str]:
    """``docker run`` of an image's service: the host network (no bridge needed), its address and keys passed in."""
    from runyard.environments.docker import SERVICE_LABEL, Engine, docker_command

    Engine.from_env().remove(spec["container"])  # what a crashed earlier start left
    argv = [docker_command(), "run", "--pull", "never", "--rm", "--init", "--network", "host", "--name", spec["container"],
            "--label", f"{SERVICE_LABEL}={folder}", "--env", f"RUNYARD_SERVICE_HOST={spec['host']}",
            "--env", f"RUNYARD_SERVICE_PORT={spec['port']}"]
    if spec["auth_enabled"]:
        # the folder, not the file: regen_key replaces keys.json, and a file mount would keep the old one
        argv += ["--volume", f"{folder}:/run/runyard:ro", "--env", "RUNYARD_SERVICE_KEYS=/run/runyard/keys.json"]
    return argv + [spec["image"]]


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# Model.deploy, Workspace.webservices and runyard.model's InferenceConfig reach the services through these.
for _name, _provider in (("deploy", deploy), ("LocalWebservice", LocalWebservice), ("InferenceConfig", InferenceConfig)):
    plugins.register(plugins.FEATURES, _name, _provider)
