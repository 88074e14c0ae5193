"""Environments: which Python a run uses, which packages it has, and the variables it sees.

Two kinds, as in Azure ML v1:

* user-managed (``python.user_managed_dependencies = True``): the run uses an existing interpreter as it is
  (``Environment.from_existing_interpreter("current")``, the default when a run names no environment);
* built (``user_managed_dependencies = False``, the default for ``Environment("name")``): runyard builds an
  isolated virtual environment from the package lists with uv, caches it by the spec's hash and reuses it
  (``runyard.environments``).
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import validation
from runyard.config.conda_dependencies import CondaDependencies
from runyard.errors import ConfigError, NotFound, ValidationError, warn

if TYPE_CHECKING:
    from runyard.store.workspace_context import WorkspaceContext as Workspace


@dataclass
class PythonSection:
    """``env.python``: the interpreter and packages of a run.

    Attributes:
        interpreter_path: a user-managed run's interpreter; for a built environment, the base interpreter the venv
            is made from (default: the interpreter that submits the run, or any on PATH of ``conda_dependencies``'s
            python version).
        user_managed_dependencies: run in ``interpreter_path`` as it is, installing nothing.
        conda_dependencies: the packages to install (pip packages, conda packages, channels, python version).
        inherit_base_packages: the built venv also sees the base interpreter's packages (``--system-site-packages``)
            and installs only what the base lacks — for heavy frameworks already installed.
    """

    interpreter_path: str | None = None
    user_managed_dependencies: bool = False
    conda_dependencies: CondaDependencies = field(default_factory=CondaDependencies)
    inherit_base_packages: bool = False
    framework: dict[str, str] | None = None  # {"name": "TensorFlow", "version": "2.21"}: set by framework estimators


@dataclass
class DockerSection:
    """``env.docker``: run the processes in a container of ``base_image`` — or of the image ``base_dockerfile`` (its
    text) builds — on a Docker engine. ``arguments`` go to ``docker run`` as written; ``shm_size``, ``memory``
    (``"512m"``, ``"4g"``: a process over it is killed, and the run fails saying it ran out of memory) and ``cpus``
    (``1.5``) limit each container."""

    enabled: bool = False
    base_image: str | None = None
    arguments: list[str] = field(default_factory=list)
    shm_size: str | None = None
    base_dockerfile: str | None = None
    memory: str | None = None
    cpus: float | None = None


@dataclass
class Environment:
    """A named, versionable environment.

    Example::

        env = Environment("tf-env")
        env.python.conda_dependencies = CondaDependencies.create(pip_packages=["tensorflow-cpu==2.21.*"])
        env.environment_variables = {"OMP_NUM_THREADS": "2"}
        env.register(ws); Environment.get(ws, "tf-env", version=1)

        Environment.from_existing_interpreter("current")      # use an interpreter as it is
    """

    name: str = "default"
    version: str | None = None
    python: PythonSection = field(default_factory=PythonSection)
    environment_variables: dict[str, str] = field(default_factory=dict)
    docker: DockerSection = field(default_factory=DockerSection)
    description: str | None = None

    # -- constructors ---------------------------------------------------------------------------------
    @classmethod
    def from_existing_interpreter(cls, interpreter: str = "current", name: str | None = None) -> "Environment":
        """Run in an interpreter that already has what the script needs: ``"current"`` or a path/command name."""
        path = sys.executable if interpreter == "current" else interpreter
        env = cls(name or ("current" if interpreter == "current" else os.path.basename(interpreter)))
        env.python = PythonSection(interpreter_path=path, user_managed_dependencies=True)
        return env

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike, pip_version: str | None = None) -> "Environment":
        """A built environment with the packages of a ``requirements.txt`` (``-r``/``-c`` includes and index options
        such as ``--extra-index-url`` are followed)."""
        env = cls(name)
        for line in read_requirements(Path(file_path)):
            if line.startswith("-"):
                env.python.conda_dependencies.set_pip_option(line)
            else:
                env.python.conda_dependencies.add_pip_package(line)
        if pip_version:
            env.python.conda_dependencies.add_pip_package(f"pip=={pip_version}")
        return env

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | os.PathLike) -> "Environment":
        """A built environment from a conda ``environment.yml`` (python version, conda packages, a pip section)."""
        env = cls(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Environment":
        """The inverse of :meth:`to_spec` (how registered environments and run definitions are read back)."""
        py = spec.get("python") or {}
        env = cls(spec.get("name") or "default", spec.get("version"), description=spec.get("description"))
        env.python = PythonSection(
            interpreter_path=py.get("interpreter_path"),
            user_managed_dependencies=bool(py.get("user_managed_dependencies", False)),
            conda_dependencies=CondaDependencies.from_dict(py["conda_dependencies"]) if py.get("conda_dependencies")
            else CondaDependencies(),
            inherit_base_packages=bool(py.get("inherit_base_packages", False)),
            framework=py.get("framework"),
        )
        env.environment_variables = dict(spec.get("environment_variables") or {})
        docker = spec.get("docker") or {}
        env.docker = DockerSection(bool(docker.get("enabled")), docker.get("base_image"), list(docker.get("arguments") or []),
                                   docker.get("shm_size"), docker.get("base_dockerfile"), docker.get("memory"),
                                   docker.get("cpus"))
        return env

    @classmethod
    def from_docker_image(cls, name: str, image: str, container_registry: Any = None,
                          conda_specification: str | os.PathLike | None = None,
                          pip_requirements: str | os.PathLike | None = None) -> "Environment":
        """Run in a container of ``image`` (a local image: runyard never pulls). With ``conda_specification`` or
        ``pip_requirements`` an environment with those packages is built inside the image (once, cached); without,
        the image's own Python runs as it is."""
        env = cls._with_packages(name, conda_specification, pip_requirements)
        env.docker = DockerSection(enabled=True, base_image=image)
        if container_registry is not None:
            warn(f"environment {name!r}: container_registry is not used — runyard runs local images only")
        return env

    @classmethod
    def from_dockerfile(cls, name: str, dockerfile: str | os.PathLike,
                        conda_specification: str | os.PathLike | None = None,
                        pip_requirements: str | os.PathLike | None = None) -> "Environment":
        """Run in a container of the image ``dockerfile`` builds (its text, or a path to it; built once per text,
        offline: its ``FROM`` must name a local image)."""
        text = str(dockerfile)
        if "\n" not in text and os.path.isfile(os.path.expanduser(text)):
            text = Path(os.path.expanduser(text)).read_text(encoding="utf-8")
        env = cls._with_packages(name, conda_specification, pip_requirements)
        env.docker = DockerSection(enabled=True, base_dockerfile=text)
        return env

    @classmethod
    def _with_packages(cls, name: str, conda_specification, pip_requirements) -> "Environment":
        if conda_specification is not None and pip_requirements is not None:
            raise ConfigError(f"environment {name!r}: give conda_specification or pip_requirements, not both")
        if conda_specification is not None:
            return cls.from_conda_specification(name, conda_specification)
        if pip_requirements is not None:
            return cls.from_pip_requirements(name, pip_requirements)
        env = cls(name)
        env.python = PythonSection(user_managed_dependencies=True)
        return env

    # -- registry (the workspace's metadata store) -------------------------------------------------------
    def register(self, workspace: "Workspace") -> "Environment":
        """Store this definition as the next version of ``name``; returns the registered copy (``version`` set)."""
        spec = self.to_spec()
        spec.pop("version", None)
        record = workspace.metadata.register_environment(spec["name"], spec)
        registered = Environment.from_spec({**record.spec, "version": str(record.version)})
        self.version = registered.version
        return registered

    @staticmethod
    def get(workspace: "Workspace", name: str, version: str | int | None = None, label: str | None = None) -> "Environment":
        """A registered environment: its latest version, or ``version``. Raises NotFound, naming the versions.

        A name of Azure ML's curated environments (``AzureML-TensorFlow-2.x-CPU``, ``AzureML-sklearn-1.0-…``) that
        the workspace has not registered answers runyard's approximation of it (``runyard.config.curated``)."""
        from runyard.config import curated

        try:
            record = workspace.metadata.get_environment(name, int(version) if version is not None else None)
        except NotFound:
            if version is None and curated.is_curated(name):
                return Environment._curated(name)
            raise
        return Environment.from_spec({**record.spec, "version": str(record.version)})

    @staticmethod
    def _curated(name: str, notify: bool = True) -> "Environment":
        """runyard's stand-in for Azure's curated environment ``name``, with a warning saying what it is."""
        from runyard.config import curated

        found = curated.approximation(name)
        env = Environment(name)
        if found.framework:
            env.python.framework = found.framework
        for package in found.pip_packages:
            env.python.conda_dependencies.add_pip_package(package)
        env.description = found.description
        if notify:
            warn(env.description)
        return env

    @staticmethod
    def list(workspace: "Workspace") -> dict[str, "Environment"]:
        """The latest version of every registered environment, by name, after the curated environments runyard
        maps (a registered one of the same name wins)."""
        from runyard.config import curated

        found = {n: Environment._curated(n, notify=False) for n in curated.LISTED}
        found.update((r.name, Environment.from_spec({**r.spec, "version": str(r.version)}))
                     for r in workspace.metadata.list_environments())
        return found

    # -- the validated form ----------------------------------------------------------------------------
    def clone(self, new_name: str | None = None) -> "Environment":
        other = copy.deepcopy(self)
        if new_name:
            other.name, other.version = new_name, None
        return other

    def to_spec(self) -> dict[str, Any]:
        """The validated, JSON-ready form stored in a job spec (a user-managed interpreter resolved to a path)."""
        name = validation.key(self.name, "environment name")
        py = self.python
        user_managed = bool(py.user_managed_dependencies)
        cd = py.conda_dependencies if py.conda_dependencies is not None else CondaDependencies()
        if not isinstance(cd, CondaDependencies):
            raise ValidationError(f"environment {name!r}: python.conda_dependencies must be a CondaDependencies")
        if user_managed and (cd.pip_packages or cd.conda_packages):
            raise ConfigError(
                f"environment {name!r} lists packages but has user_managed_dependencies=True, so nothing would be "
                "installed — set env.python.user_managed_dependencies = False to build an environment with them"
            )
        docker = self.docker
        if docker.enabled and not (docker.base_image or docker.base_dockerfile):
            raise ConfigError(f"environment {name!r}: docker.enabled=True needs docker.base_image (a local image, e.g. "
                              "'runyard/base:bookworm' from `runyard image build-base`) or docker.base_dockerfile")
        if docker.base_image and docker.base_dockerfile:
            raise ConfigError(f"environment {name!r}: set docker.base_image or docker.base_dockerfile, not both")
        _check_docker_resources(docker, name)
        if docker.enabled:  # a path inside the image, or None: the image's python3 (else python)
            interpreter = py.interpreter_path
        elif user_managed or py.interpreter_path:
            interpreter = _interpreter(py.interpreter_path, name)
        else:
            interpreter = None
        return {
            "name": name,
            "version": self.version,
            "description": self.description,
            "python": {
                "interpreter_path": interpreter,
                "user_managed_dependencies": user_managed,
                "inherit_base_packages": bool(py.inherit_base_packages),
                "conda_dependencies": None if user_managed else cd.as_dict(),
                "framework": dict(py.framework) if py.framework and not user_managed else None,
            },
            "environment_variables": _variables(self.environment_variables, name),
            "docker": {"enabled": bool(docker.enabled), "base_image": docker.base_image,
                       "arguments": [str(a) for a in docker.arguments], "shm_size": docker.shm_size,
                       "base_dockerfile": docker.base_dockerfile, "memory": docker.memory,
                       "cpus": float(docker.cpus) if docker.cpus is not None else None},
        }

    def __repr__(self) -> str:
        kind = "user-managed" if self.python.user_managed_dependencies else "built"
        return f"Environment(name={self.name!r}, version={self.version!r}, {kind})"


_SIZE = re.compile(r"^\d+(\.\d+)?[bkmg]?$", re.IGNORECASE)


def _check_docker_resources(docker: DockerSection, name: str) -> None:
    for field_name in ("shm_size", "memory"):
        value = getattr(docker, field_name)
        if value is not None and not _SIZE.match(str(value)):
            raise ConfigError(f"environment {name!r}: docker.{field_name}={value!r} is not a size such as '512m' or '2g'")
    if docker.cpus is not None and (isinstance(docker.cpus, bool) or not isinstance(docker.cpus, (int, float))
                                    or docker.cpus <= 0):
        raise ConfigError(f"environment {name!r}: docker.cpus must be a positive number, got {docker.cpus!r}")
    if not isinstance(docker.arguments, (list, tuple)):
        raise ConfigError(f"environment {name!r}: docker.arguments must be a list of docker run arguments")


def read_requirements(path: Path, _seen: frozenset[Path] = frozenset()) -> list[str]:
    """The requirement and option lines of a requirements file, ``-r`` includes followed, comments dropped."""
    path = path.expanduser()
    if not path.is_file():
        raise NotFound(f"requirements file {os.fspath(path)!r} not found")
    if path.resolve() in _seen:
        raise ConfigError(f"requirements file {path} includes itself (through -r)")
    lines: list[str] = []
    raw = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in raw.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        for flag in ("-r ", "--requirement ", "--requirement="):
            if line.startswith(flag):
                lines += read_requirements(path.parent / line[len(flag):].strip(), _seen | {path.resolve()})
                break
        else:
            if line.startswith(("-c ", "--constraint ")):
                line = f"--constraint {(path.parent / line.split(None, 1)[1]).resolve()}"
            lines.append(line)
    return lines


def _variables(variables: Any, name: str) -> dict[str, str]:
    if not isinstance(variables, dict):
        raise ValidationError(f"environment {name!r}: environment_variables must be a dict of str → str")
    out = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValidationError(f"environment {name!r}: invalid environment variable name {key!r}")
        if not isinstance(value, (str, int, float, bool)):
            raise ValidationError(f"environment {name!r}: variable {key} must be a string or number, got {type(value).__name__}")
        out[key] = str(value)
    return out


def _interpreter(path: str | None, env_name: str) -> str:
    if path is None:
        return sys.executable
    found = path if os.sep in path else shutil.which(path)
    if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise ConfigError(
            f"environment {env_name!r}: Python interpreter {path!r} not found or not executable — give the full path "
            "of an existing interpreter, or Environment.from_existing_interpreter('current')"
        )
    return os.path.abspath(found)
