"""Environments: a spec → a key → an isolated Python environment, built once with uv and reused (DESIGN.md §3.3).

``plan()`` (at submit; cheap, no side effects) normalises an environment spec, hashes what decides its contents
into a key, and says whether ``ENV_DIR/<key>`` is already built (``builder.ensure`` builds it).

Environment variables are not part of the key: they do not change what is installed, and a variable that changes
must not cost a rebuild. The key covers the python version, pip requirements and options (constraint files by
content), conda packages and channels, the framework pin, ``use_gpu``, inheritance from a base interpreter, the
docker image, and runyard's own client requirements.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import env_vars
from runyard.config.package_index import (
    IndexSettings,
    available_versions,
    canonical,
    pip_settings,
)
from runyard.environments import horovod
from runyard.errors import ConfigError, EnvironmentBuildError

if TYPE_CHECKING:
    from runyard.store.workspace_context import WorkspaceContext

RUNYARD_PACKAGE = Path(__file__).resolve().parents[1]  # linked into every built environment (its run client)
MARKER = "runyard-env.json"  # written last: an environment folder without it is an interrupted build
LAST_USED = ".last-used"
_KEY_VERSION = 2  # bump when the way environments are built changes (2: runyard's extension points, which the
# linked client's entry_points.txt declares, so that a script's run.input_datasets finds the data package's)
# conda package names whose PyPI name differs, and conda-only packages a pip build can do without.
_CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost", "pytables": "tables",
                  "tensorflow-gpu": "tensorflow", "pillow": "pillow", "matplotlib-base": "matplotlib",
                  "pyyaml": "pyyaml", "py-opencv": "opencv-python", "libopencv": "opencv-python"}
_CONDA_ONLY_SKIPPED = {"cudatoolkit", "cudnn", "cpuonly", "mkl", "mkl-service", "blas", "libblas", "nomkl", "pip",
                       "setuptools", "wheel", "ca-certificates", "openssl", "certifi"}
_WELL_KNOWN = {"numpy", "scipy", "pandas", "scikit-learn", "matplotlib", "seaborn", "torch", "torchvision",
               "tensorflow", "keras", "xgboost", "lightgbm", "pyyaml", "requests", "h5py", "pillow", "tqdm", "joblib",
               "statsmodels", "sympy", "networkx", "numba", "pyarrow", "onnx", "onnxruntime", "opencv-python",
               "ipykernel", "jupyter", "tables", "mpi4py", "horovod", "cython", "protobuf", "six", "scikit-image"}


@dataclass(frozen=True)
class EnvironmentPlan:
    """What a run's environment is and, when it is not built yet, how to build it (JSON-ready)."""

    name: str
    key: str | None  # None: a user-managed interpreter, nothing to build
    python: str  # the interpreter the run's processes start (inside the container for docker)
    path: str | None = None  # the environment's folder
    ready: bool = True
    build: dict[str, Any] = field(default_factory=dict)
    docker: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvironmentPlan":
        return cls(**{**d, "warnings": tuple(d.get("warnings") or ())})


def env_root(workspace: "WorkspaceContext | None" = None) -> Path:
    """Where built environments live: ``RUNYARD_ENV_DIR``, else the workspace's ``envs/``."""
    configured = os.environ.get(env_vars.ENV_DIR)
    if configured:
        return Path(configured).expanduser().absolute()
    if workspace is None:
        raise ConfigError("no workspace to keep environments in — set RUNYARD_ENV_DIR")
    return workspace.path / "envs"


# -- plan ---------------------------------------------------------------------------------------------------
def plan(root: Path, spec: dict[str, Any], use_gpu: bool = False, tracking_uri: str = "",
         mpi: bool = False) -> EnvironmentPlan:
    """Normalise ``spec`` (``Environment.to_spec()``), compute its key and say whether it is built in ``root``.
    ``mpi``: the job's processes are started by MPI (a framework environment then gets Horovod and mpi4py).

    Raises ConfigError before anything is built: unknown pip options, conda packages pip cannot install, a
    framework version the indexes do not have, a missing base interpreter.
    """
    py = spec.get("python") or {}
    name = spec.get("name") or "default"
    docker, notes = _docker(spec)
    if docker:
        return _in_container(root, name, py, docker, notes, use_gpu, tracking_uri, mpi)
    if py.get("user_managed_dependencies", True):
        python = py.get("interpreter_path") or sys.executable
        return EnvironmentPlan(name, None, python, warnings=tuple(notes))
    request, warnings = _normalise(py, use_gpu, tracking_uri, mpi=mpi)
    warnings = notes + warnings
    key = hashlib.sha256(json.dumps({"v": _KEY_VERSION, **request}, sort_keys=True).encode()).hexdigest()[:20]
    path = root / key
    ready = is_ready(path)
    build: dict[str, Any] = {"request": request, "base": _base_interpreter(request, py.get("interpreter_path"))}
    if not ready:
        build.update(_build_instructions(request))
    return EnvironmentPlan(name, key, f"{path}/bin/python", str(path), ready, build, None, tuple(warnings))


def _in_container(root: Path, name: str, py: dict[str, Any], docker: dict[str, Any], notes: list[str], use_gpu: bool,
                  tracking_uri: str, mpi: bool = False) -> EnvironmentPlan:
    """An environment inside an image: a venv made by the image's Python in a cached folder, which every container of
    the run mounts at its own path. Its packages are installed there with uv (inside the container); a user-managed
    one sees the image's packages as they are (``--system-site-packages``) with runyard's client added, so that
    ``Run.get_context()`` logs to the run. Keyed by the image's id (or the Dockerfile's text) and the spec."""
    interpreter = py.get("interpreter_path")
    if py.get("user_managed_dependencies", True):
        request, warnings = _nothing_to_install(tracking_uri), list(notes)
        system_site = True
    else:
        request, warnings = _normalise(py, use_gpu, tracking_uri, in_container=True, mpi=mpi)
        warnings = notes + warnings
        system_site = bool(py.get("inherit_base_packages"))
    request.update(interpreter=interpreter, system_site_packages=system_site,
                   image={"id": docker.get("image_id"), "dockerfile": docker.get("dockerfile_sha")})
    key = hashlib.sha256(json.dumps({"v": _KEY_VERSION, **request}, sort_keys=True).encode()).hexdigest()[:20]
    path = root / key
    ready = is_ready(path, True)
    build: dict[str, Any] = {"request": request, "base": interpreter}
    if not ready:
        build.update(_build_instructions(request))
    return EnvironmentPlan(name, key, f"{path}/bin/python", str(path), ready, build, docker, tuple(warnings))


def _nothing_to_install(tracking_uri: str = "") -> dict[str, Any]:
    """The request of an image's own Python as it is: no packages but runyard's client (``_normalise``'s shape)."""
    return {"python": None, "inherit_from": None, "requirements": [], "options": [], "constraints": [], "conda": None,
            "framework": None, "client": client_requirements(tracking_uri)}


def install_instructions(spec: dict[str, Any], extra: list[str] = ()) -> dict[str, Any]:
    """What installing ``spec``'s packages (and ``extra``) into an image takes, for an image of its own (a model
    package): ``install`` (requirements, framework pinned), ``uv_options`` (this machine's indexes), ``constraints``."""
    py = spec.get("python") or {}
    if py.get("user_managed_dependencies", True):
        request = _nothing_to_install()
    else:
        request, _ = _normalise(py, False, "", in_container=True)
    build = _build_instructions(request)
    return {"install": [*build["install"], *extra], "uv_options": build["uv_options"],
            "constraints": list(request["constraints"])}


def relocate(plan_: EnvironmentPlan, root: Path) -> tuple[EnvironmentPlan, list[str]]:
    """The same environment on another machine (a Ray node): its folder under that machine's cache ``root``, built
    there or not, from an interpreter that exists there. Returns the plan and what was changed, to be said."""
    notes: list[str] = []
    if plan_.key is None:  # user-managed: the submitter's interpreter, else this machine's (the node's Python)
        if plan_.docker or os.path.exists(plan_.python):
            return plan_, notes
        notes.append(f"{plan_.python} does not exist on this node: the run uses {sys.executable}")
        return EnvironmentPlan(plan_.name, None, sys.executable, docker=plan_.docker, warnings=plan_.warnings), notes
    path = root / plan_.key
    build = dict(plan_.build)
    base = build.get("base")
    if base and not plan_.docker and not os.path.exists(base):
        request = build["request"]
        replacement = (sys.executable if _same_python(request["python"])
                       else shutil.which(f"python{request['python']}") or request["python"])
        notes.append(f"the base interpreter {base} does not exist on this node: building from {replacement}")
        build["base"] = replacement
        if request["inherit_from"]:
            raise EnvironmentBuildError(f"inherit_base_packages needs {base} on every node; it is missing here")
    ready = is_ready(path, bool(plan_.docker))
    if not ready and build.get("install") is None:
        build.update(_build_instructions(build["request"]))
    return EnvironmentPlan(plan_.name, plan_.key, f"{path}/bin/python", str(path), ready, build, plan_.docker,
                           plan_.warnings), notes


def _normalise(py: dict[str, Any], use_gpu: bool, tracking_uri: str, in_container: bool = False,
               mpi: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The part of a spec that decides what is installed, in one canonical form (``in_container``: built inside an
    image, whose Python decides the version unless the spec names one, with pip only; ``mpi``: for a job whose
    processes MPI starts). Horovod is not installed by uv: ``request["horovod"]`` says the builder compiles it."""
    cd = py.get("conda_dependencies") or {}
    warnings: list[str] = []
    python_version, conda_packages, pip_lines = None, [], []
    for dep in cd.get("dependencies") or []:
        if isinstance(dep, dict):
            pip_lines += [str(x) for x in dep.get("pip", [])]
        elif m := re.match(r"^python\s*=?=?\s*(\d[\d.]*)$", str(dep).strip()):
            python_version = m.group(1)
        else:
            conda_packages.append(str(dep).strip())
    base = py.get("interpreter_path")
    if in_container:  # the image's interpreter: its version is read inside the container when it is built
        base_version = None
    else:
        base_version = _python_version(base) if base else f"{sys.version_info[0]}.{sys.version_info[1]}"
    python_version = python_version or base_version
    if base_version and python_version != base_version and not base_version.startswith(python_version + "."):
        raise ConfigError(f"the environment asks for python {python_version} but its interpreter {base} is {base_version}")
    options, requirements, constraints = _pip_lines(pip_lines)
    azure = [r for r in requirements if _is_azure_sdk(r)]
    if azure:  # Azure's SDK inside a run: runyard's client (always installed) takes its place
        requirements = [r for r in requirements if r not in azure]
        warnings.append(f"left out {', '.join(azure)}: Azure ML's SDK packages are not needed in a runyard run "
                        "(runyard's client is installed in every environment; `runyard migrate` ports the imports)")
    conda_tool = _conda_tool() if conda_packages and not in_container else None
    if conda_packages and not conda_tool:
        mapped, skipped = _conda_via_pip(conda_packages)
        requirements += mapped
        if mapped or skipped:
            warnings.append("no conda, mamba or micromamba on PATH: conda packages "
                            + ", ".join(conda_packages) + " are installed with pip as " + ", ".join(mapped or ["nothing"])
                            + (f" (skipped, not needed with pip: {', '.join(skipped)})" if skipped else ""))
        conda_packages = []
    framework = py.get("framework")
    asked, requirements = horovod.split(requirements)
    with_horovod, notes = horovod.request(asked, requirements, framework, mpi, in_container)
    warnings += notes
    if with_horovod and mpi:  # what Azure's MPI images had beside it
        requirements.append("mpi4py")
    inherit = bool(py.get("inherit_base_packages")) and not in_container  # in an image: --system-site-packages
    if inherit and not base:
        base = sys.executable
    request = {
        "python": python_version,
        # What is visible depends on the base. Not realpath: a venv's python is a link, and resolving it would
        # inherit the packages of the venv's base installation instead of the venv's own.
        "inherit_from": os.path.abspath(base) if inherit else None,
        "requirements": sorted(set(requirements)),
        "options": options,
        "constraints": constraints,
        "conda": {"tool": conda_tool, "packages": sorted(conda_packages),
                  "channels": list(cd.get("channels") or [])} if conda_packages else None,
        "framework": {"name": framework["name"], "version": framework["version"], "gpu": bool(use_gpu),
                      "with": _companions(framework)} if framework else None,
        "client": client_requirements(tracking_uri),
    }
    if with_horovod:  # only then: the keys of environments without it stay as they were
        request["horovod"] = with_horovod
    return request, warnings


def _companions(framework: dict[str, Any]) -> list[str]:
    """What the framework brings beside itself (part of the key: a change makes a new environment)."""
    from runyard.train.frameworks import companions, framework as known

    return companions(known(framework["name"]), str(framework["version"]))


def _is_azure_sdk(requirement: str) -> bool:
    name = re.split(r"[\[<>=!~;@ ]", requirement, maxsplit=1)[0]
    return canonical(name).startswith("azureml-") or canonical(name) == "azureml"


def _pip_lines(lines: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Split pip lines into index options, normalised requirements and constraint lines (read from their files)."""
    from packaging.requirements import InvalidRequirement, Requirement

    options: list[str] = []
    requirements: list[str] = []
    constraints: list[str] = []
    for raw in lines:
        line = raw.strip()
        if line.startswith("-"):
            flag, _, value = line.replace("=", " ", 1).partition(" ")
            value = value.strip()
            if flag in ("--constraint", "-c"):
                constraints += [c for c in _read_lines(Path(value)) if not c.startswith("-")]
            elif flag in ("--index-url", "-i", "--extra-index-url", "--find-links", "-f") and value:
                options += [{"-i": "--index-url", "-f": "--find-links"}.get(flag, flag), value]
            elif flag == "--pre" and not value:
                options.append("--pre")
            else:
                raise ConfigError(f"pip option {line!r} is not supported in an environment; runyard passes "
                                  "--index-url, --extra-index-url, --find-links, --constraint and --pre to uv")
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            if "://" in line or line.startswith((".", "/", "~")):
                requirements.append(line)  # a URL or a local path: passed as written
                continue
            raise ConfigError(f"pip requirement {line!r} is not valid: write it as name, name==1.2, name>=1.0, …") from None
        req.name = canonical(req.name)
        requirements.append(str(req))
    return options, requirements, sorted(set(constraints))


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ConfigError(f"constraints file {path} not found")
    return [ln.split("#")[0].strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.split("#")[0].strip()]


def _conda_via_pip(packages: list[str]) -> tuple[list[str], list[str]]:
    """conda specs → pip requirements: ``numpy=1.26`` → ``numpy==1.26.*``; a name pip has never heard of is an error."""
    mapped, skipped, unknown = [], [], []
    settings = None
    for spec in packages:
        body = spec.split("::")[-1].strip()  # channel::name=version=build
        name = re.match(r"[A-Za-z0-9_.\-]+", body).group(0).lower()
        rest = body[len(name):].strip()
        if canonical(name) in _CONDA_ONLY_SKIPPED:
            skipped.append(spec)
            continue
        pypi = _CONDA_TO_PYPI.get(name, name)
        if canonical(pypi) not in _WELL_KNOWN and pypi == name:
            settings = settings or pip_settings()
            if not available_versions(pypi, settings):
                unknown.append(spec)
                continue
        version = ""
        if rest.startswith("=") and not rest.startswith("=="):
            number = rest.lstrip("=").split("=")[0].strip()
            version = f"=={number}" if number.count(".") >= 2 or "*" in number else f"=={number}.*"
        elif rest:
            version = rest.replace(" ", "")  # ">=1.5", "==1.2", "<2,>=1"
        mapped.append(f"{pypi}{version}")
    if unknown:
        raise ConfigError(
            f"conda package(s) {', '.join(unknown)} cannot be installed: there is no conda, mamba or micromamba on "
            "PATH, and the package indexes have no package of that name — install micromamba, or list a pip "
            "equivalent in pip_packages"
        )
    return mapped, skipped


def _conda_tool() -> str | None:
    for tool in ("micromamba", "mamba", "conda"):
        found = shutil.which(tool)
        if found:
            return found
    return None


# What a script needs to log into its run from a built environment: runyard's store and artifact dependencies
# (a test keeps them in step with pyproject.toml). The CLI's typer/rich and uv itself are left out.
CLIENT_REQUIREMENTS = ("alembic>=1.13", "filelock>=3.12", "fsspec>=2024.2", "psutil>=5.9", "sqlalchemy>=2.0,<2.2")


def client_requirements(tracking_uri: str = "") -> list[str]:
    """runyard's run client inside a built environment (psycopg too for a PostgreSQL metadata store)."""
    return [*CLIENT_REQUIREMENTS, *(["psycopg[binary]>=3.1"] if tracking_uri.startswith("postgresql") else [])]


def _python_version(interpreter: str) -> str:
    try:
        out = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run the base interpreter {interpreter}: {exc}") from exc
    if out.returncode != 0:
        raise ConfigError(f"the base interpreter {interpreter} does not start: {out.stderr.strip()[-300:]}")
    return out.stdout.strip()


def _build_instructions(request: dict[str, Any]) -> dict[str, Any]:
    """Resolve what a build needs beyond the key: the framework pin (and its version check), index options."""
    settings = pip_settings()
    requirements = list(request["requirements"])
    options = list(request["options"])
    fw = request.get("framework")
    if fw:
        from runyard.train.frameworks import framework, pin

        version = request["python"] or "%d.%d" % sys.version_info[:2]  # an image's own: checked when it is built
        major, minor = (int(x) for x in version.split(".")[:2])
        check = os.environ.get(env_vars.ENV_INDEX_CHECK, "1") != "0"
        if "image" not in request:  # a build on this machine (an image's own Python is checked when it is built)
            framework(fw["name"]).check_python((major, minor))
        pinned, extra = pin(framework(fw["name"]), fw["version"], fw["gpu"], settings, (major, minor), check)
        requirements = pinned + requirements
        options += extra
    if any(o in ("--index-url", "--extra-index-url", "--find-links") for o in options):
        # the spec names its own sources: keep pip's find-links and constraints, not its indexes
        settings = IndexSettings(find_links=settings.find_links, constraints=settings.constraints, from_uv=settings.from_uv)
    # pip reads its own configuration: an inheriting build (which installs with pip) gets the spec's options only
    return {"install": requirements, "uv_options": settings.uv_args() + options, "pip_options": options}


def _base_interpreter(request: dict[str, Any], interpreter: str | None) -> str:
    """The interpreter a venv is made from: the spec's, the submitting one when its version fits, else whatever
    uv finds for the version."""
    if request["inherit_from"]:
        return request["inherit_from"]
    if interpreter:
        return interpreter
    return sys.executable if _same_python(request["python"]) else request["python"]


def _same_python(version: str) -> bool:
    """``version`` ("3.11" or "3.11.7") is this interpreter's."""
    return version in ("%d.%d" % sys.version_info[:2], "%d.%d.%d" % sys.version_info[:3])


def _docker(spec: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """The container a run uses (None: none) and what to tell the user about it. The image must be on the engine
    (its id keys the environment); a ``base_dockerfile``'s image is built when the environment is (keyed by its text).
    Raises ComputeError when no engine answers, ConfigError when the image is not there."""
    from runyard.config.run_configuration import is_azure_base_image
    from runyard.environments.docker import engine, image_id

    docker = spec.get("docker") or {}
    if not docker.get("enabled"):
        return None, []
    if is_azure_base_image(docker.get("base_image")):
        return None, [f"docker base image {docker['base_image']} is one of Azure ML's compute images (OS, conda, MPI): "
                      "runyard runs this environment without a container"]
    found = engine()
    container: dict[str, Any] = {"arguments": [str(a) for a in docker.get("arguments") or []],
                                 "shm_size": docker.get("shm_size"), "memory": docker.get("memory"),
                                 "cpus": docker.get("cpus")}
    if docker.get("base_dockerfile"):
        digest = hashlib.sha256(docker["base_dockerfile"].encode()).hexdigest()
        container.update(image=f"runyard/dockerfile:{digest[:16]}", dockerfile=docker["base_dockerfile"],
                         dockerfile_sha=digest)
    else:
        container.update(image=docker["base_image"], image_id=image_id(docker["base_image"], found))
    return container, []


def is_ready(path: Path, in_container: bool = False) -> bool:
    """Built completely (the marker is written last) and its interpreter still runs here (a venv's python links
    to its base interpreter; in a container-built one, to the image's, which the host cannot see)."""
    python = path / "bin" / "python"
    return (path / MARKER).is_file() and (os.path.lexists(python) if in_container else os.access(python, os.X_OK))
