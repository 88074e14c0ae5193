"""Environments: a spec → a key → an isolated Python environment, built once with uv and reused (DESIGN.md §3.3).

``plan()`` (at submit; cheap, no side effects) normalises an environment spec, hashes what decides its contents
into a key, and says whether ``ENV_DIR/<key>`` is already built. ``ensure()`` (in the run's supervisor, Preparing
phase) builds it under a file lock — concurrent runs of one spec build it once — streaming the build log; a build
that fails leaves nothing behind and is not cached.

Environment variables are not part of the key: they do not change what is installed, and a variable that changes
must not cost a rebuild. The key covers the python version, pip requirements and options (constraint files by
content), conda packages and channels, the framework pin, ``use_gpu``, inheritance from a base interpreter, the
docker image, and runyard's own client requirements.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import env_vars
from runyard.errors import ConfigError, EnvironmentBuildError
from runyard.config.package_index import IndexSettings, available_versions, canonical, pip_settings

if TYPE_CHECKING:
    from runyard.store.workspace_context import WorkspaceContext

RUNYARD_PACKAGE = Path(__file__).resolve().parents[1]  # linked into every built environment (its run client)
MARKER = "runyard-env.json"  # written last: an environment folder without it is an interrupted build
LAST_USED = ".last-used"
_KEY_VERSION = 1  # bump when the way environments are built changes
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
def plan(root: Path, spec: dict[str, Any], use_gpu: bool = False, tracking_uri: str = "") -> EnvironmentPlan:
    """Normalise ``spec`` (``Environment.to_spec()``), compute its key and say whether it is built in ``root``.

    Raises ConfigError before anything is built: unknown pip options, conda packages pip cannot install, a
    framework version the indexes do not have, a missing base interpreter.
    """
    py = spec.get("python") or {}
    name = spec.get("name") or "default"
    docker, notes = _docker(spec)
    if py.get("user_managed_dependencies", True):
        python = py.get("interpreter_path") or sys.executable
        return EnvironmentPlan(name, None, "python" if docker and not py.get("interpreter_path") else python,
                               docker=docker, warnings=tuple(notes))
    request, warnings = _normalise(py, use_gpu, tracking_uri)
    warnings = notes + warnings
    if docker:
        request["docker_image"] = docker["image"]
    key = hashlib.sha256(json.dumps({"v": _KEY_VERSION, **request}, sort_keys=True).encode()).hexdigest()[:20]
    path = root / key
    ready = is_ready(path, bool(docker))
    build: dict[str, Any] = {"request": request, "base": _base_interpreter(request, py.get("interpreter_path"))}
    if not ready:
        build.update(_build_instructions(request))
    python = f"{path}/bin/python"  # a container mounts the folder at the same path
    return EnvironmentPlan(name, key, python, str(path), ready, build, docker, tuple(warnings))


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
    if base and not os.path.exists(base):
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


def _normalise(py: dict[str, Any], use_gpu: bool, tracking_uri: str) -> tuple[dict[str, Any], list[str]]:
    """The part of a spec that decides what is installed, in one canonical form."""
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
    base_version = _python_version(base) if base else f"{sys.version_info[0]}.{sys.version_info[1]}"
    python_version = python_version or base_version
    if base and python_version != base_version and not base_version.startswith(python_version + "."):
        raise ConfigError(f"the environment asks for python {python_version} but its interpreter {base} is {base_version}")
    options, requirements, constraints = _pip_lines(pip_lines)
    azure = [r for r in requirements if _is_azure_sdk(r)]
    if azure:  # Azure's SDK inside a run: runyard's client (always installed) takes its place
        requirements = [r for r in requirements if r not in azure]
        warnings.append(f"left out {', '.join(azure)}: Azure ML's SDK packages are not needed in a runyard run "
                        "(runyard's client is installed in every environment; `runyard migrate` ports the imports)")
    conda_tool = _conda_tool() if conda_packages else None
    if conda_packages and not conda_tool:
        mapped, skipped = _conda_via_pip(conda_packages)
        requirements += mapped
        if mapped or skipped:
            warnings.append("no conda, mamba or micromamba on PATH: conda packages "
                            + ", ".join(conda_packages) + " are installed with pip as " + ", ".join(mapped or ["nothing"])
                            + (f" (skipped, not needed with pip: {', '.join(skipped)})" if skipped else ""))
        conda_packages = []
    framework = py.get("framework")
    inherit = bool(py.get("inherit_base_packages"))
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
        "framework": {"name": framework["name"], "version": framework["version"], "gpu": bool(use_gpu)} if framework else None,
        "client": client_requirements(tracking_uri),
    }
    return request, warnings


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

        major, minor = (int(x) for x in request["python"].split(".")[:2])
        check = os.environ.get(env_vars.ENV_INDEX_CHECK, "1") != "0"
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
    """The container a run uses (None: none) and what to tell the user about it."""
    from runyard.config.run_configuration import is_azure_base_image

    docker = spec.get("docker") or {}
    if not docker.get("enabled"):
        return None, []
    if is_azure_base_image(docker.get("base_image")):
        return None, [f"docker base image {docker['base_image']} is one of Azure ML's compute images (OS, conda, MPI): "
                      "runyard runs this environment without a container"]
    return {"image": docker["base_image"], "arguments": list(docker.get("arguments") or []),
            "shm_size": docker.get("shm_size")}, []


def docker_argv(docker: dict[str, Any], argv: list[str], env_names: list[str], workdir: str,
                mounts: list[str], gpus: str | None = None) -> list[str]:
    """``docker run`` for one process: the run's folders mounted at the same paths, its variables passed by name,
    the host network (rendezvous addresses stay valid)."""
    cmd = ["docker", "run", "--rm", "--init", "--network", "host", "--workdir", workdir,
           "--user", f"{os.getuid()}:{os.getgid()}"]
    for path in dict.fromkeys([workdir, *mounts]):
        cmd += ["--volume", f"{path}:{path}"]
    for name in sorted(env_names):
        cmd += ["--env", name]
    if docker.get("shm_size"):
        cmd += ["--shm-size", docker["shm_size"]]
    if gpus:
        cmd += ["--gpus", f"device={gpus}"]
    return cmd + list(docker.get("arguments") or []) + [docker["image"], *argv]


def docker_engine_error() -> str | None:
    """None when a Docker engine answers; else what is wrong, for a clear error before anything runs."""
    docker = shutil.which("docker")
    if docker is None:
        return "the environment runs in a Docker container but there is no docker command on PATH"
    try:
        out = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                             timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the Docker engine does not answer ({exc})"
    if out.returncode != 0 or not out.stdout.strip():
        reason = (out.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"the Docker engine does not answer: {reason}"
    return None


# -- build --------------------------------------------------------------------------------------------------
def is_ready(path: Path, in_container: bool = False) -> bool:
    """Built completely (the marker is written last) and its interpreter still runs here (a venv's python links
    to its base interpreter; in a container-built one, to the image's, which the host cannot see)."""
    python = path / "bin" / "python"
    return (path / MARKER).is_file() and (os.path.lexists(python) if in_container else os.access(python, os.X_OK))


class BuildCanceled(EnvironmentBuildError):
    """The build was stopped from outside (a run canceled while Preparing, Ctrl-C in ``runyard env build``)."""


@dataclass(frozen=True)
class _Limit:
    """When a build must stop: its deadline, or a cancel event set by whoever waits for it."""

    deadline: float
    cancel: threading.Event | None = None

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise BuildCanceled("the environment build was canceled")


def ensure(plan_: EnvironmentPlan, say: Callable[[str], None], timeout: float | None = None,
           cancel: threading.Event | None = None) -> Path | None:
    """Make the plan's environment exist (build it under a lock unless built); returns its folder.

    ``cancel`` stops the build (its commands are killed, the folder removed) and raises ``BuildCanceled``."""
    from filelock import FileLock, Timeout

    if plan_.key is None:
        return None
    path = Path(plan_.path)
    in_container = bool(plan_.docker)
    if is_ready(path, in_container):
        _touch(path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"another run is building environment {plan_.name} ({plan_.key}); waiting for it")
        while True:
            try:
                lock.acquire(timeout=0.2)
                break
            except Timeout:
                if cancel is not None and cancel.is_set():
                    raise BuildCanceled("canceled while waiting for another run's build") from None
    try:
        if is_ready(path, in_container):
            say(f"environment {plan_.name} ({plan_.key}) was built by another run meanwhile; reusing it")
            _touch(path)
            return path
        build = plan_.build if plan_.build.get("install") is not None else {**plan_.build,
                                                                            **_build_instructions(plan_.build["request"])}
        if path.exists():
            shutil.rmtree(path)  # what an interrupted build left
        started = time.monotonic()
        limit = _Limit(started + (timeout or float(os.environ.get(env_vars.ENV_BUILD_TIMEOUT, 1800))), cancel)
        try:
            _build(path, plan_, build, say, limit)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # a failed build is not cached, and leaves nothing behind
            raise
        say(f"environment {plan_.name} ({plan_.key}) ready in {time.monotonic() - started:.1f} s")
        return path
    finally:
        lock.release()


def _build(path: Path, plan_: EnvironmentPlan, build: dict[str, Any], say, limit: _Limit) -> None:
    request = build["request"]
    uv = _uv()
    steps = 3 + bool(request["conda"])
    step = iter(range(1, steps + 1))
    python = str(path / "bin" / "python")
    if plan_.docker:
        _build_in_container(path, plan_.docker, build, say, limit)
        return _finish(path, plan_, build, say, limit)
    conda = request.get("conda")
    if conda:
        say(f"[{next(step)}/{steps}] creating a conda environment with {Path(conda['tool']).name}: "
            + " ".join(conda["packages"]))
        channels = [a for c in conda["channels"] for a in ("-c", c)]
        _run([conda["tool"], "create", "--yes", "--prefix", str(path), f"python={request['python']}",
              *conda["packages"], *channels], say, limit)
    else:
        target = build["base"]
        say(f"[{next(step)}/{steps}] creating a virtual environment (python {request['python']}) with uv")
        _run([uv, "venv", str(path), "--python", target, "--no-project", "--no-config"], say, limit)
    install = list(build["install"])
    if request["inherit_from"]:
        _inherit(path, request["inherit_from"], say, limit)
    # runyard's client packages are linked from this interpreter when the environment's Python can load them
    # (same version; no conda); otherwise they are installed like the others.
    linked = None if (conda or request["inherit_from"]) else _client_links(path.parent, request["python"],
                                                                             request["client"])
    client = [] if linked is not None else request["client"]
    install_list = path / "runyard-requirements.txt"
    install_list.write_text("\n".join(install + client) + "\n", encoding="utf-8")
    constraint_args: list[str] = []
    if request["constraints"]:
        constraints = path / "runyard-constraints.txt"
        constraints.write_text("\n".join(request["constraints"]) + "\n", encoding="utf-8")
        constraint_args = ["--constraint", str(constraints)]
    say(f"[{next(step)}/{steps}] installing {len(install)} package(s)" + (f": {' '.join(install)}" if install else "")
        + (f" and runyard's client ({len(client)} packages)" if client else ""))
    if not install and not client:
        pass  # nothing to install: the environment is the interpreter and runyard's client
    elif request["inherit_from"]:
        # uv does not see packages a venv inherits (astral-sh/uv#4466) and would install them again; pip does.
        _run([python, "-m", "pip", "install", "--no-compile", "--disable-pip-version-check", "--no-input",
              "-r", str(install_list), *constraint_args, *build["pip_options"]], say, limit)
    else:
        options = [("--prerelease=allow" if o == "--pre" else o) for o in build["uv_options"]]
        _run([uv, "pip", "install", "--python", python, "-r", str(install_list), *constraint_args,
              "--no-config", *options], say, limit)
    say(f"[{next(step)}/{steps}] linking runyard {_runyard_version()}"
        + (f" and its client packages ({', '.join(n.partition('-')[0] for n, _ in linked if n.endswith('.dist-info'))})"
           if linked else "")
        + " into the environment")
    if linked:
        _link_distributions(path, linked)
    _finish(path, plan_, build, say, limit)


def _build_in_container(path: Path, docker: dict[str, Any], build: dict[str, Any], say, limit: _Limit) -> None:
    """A venv made by the image's own python, inside the container, in a host folder mounted at the same path."""
    request = build["request"]
    path.mkdir(parents=True)
    (path / "runyard-requirements.txt").write_text("\n".join(build["install"] + request["client"]) + "\n",
                                                    encoding="utf-8")
    script = (f"python -m venv {path} && {path}/bin/python -m pip install --no-compile --disable-pip-version-check "
              f"-r {path}/runyard-requirements.txt")
    say(f"[1/2] building the environment inside {docker['image']}")
    _run(docker_argv(docker, ["sh", "-c", script], [], str(path), []), say, limit)
    say(f"[2/2] linking runyard {_runyard_version()} into the environment")


def _finish(path: Path, plan_: EnvironmentPlan, build: dict[str, Any], say, limit: _Limit) -> None:
    """Link runyard's client, record what is installed, and write the marker that makes the build count."""
    request = build["request"]
    _link_client(path)
    limit.check()  # a build canceled after its last command never gets its marker
    (path / MARKER).write_text(json.dumps({
        "key": plan_.key, "name": plan_.name, "python": request["python"], "created_at": time.time(),
        "request": request, "installed": build["install"], "packages": _installed(path),
    }, indent=2), encoding="utf-8")
    _touch(path)


def _inherit(path: Path, base: str, say, limit: _Limit) -> None:
    """Make the base interpreter's packages visible after the environment's own (a .pth file), and pip usable."""
    out = subprocess.run([base, "-c", "import site, sys, json; print(json.dumps(site.getsitepackages() + "
                          "[site.getusersitepackages()]))"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise EnvironmentBuildError(f"cannot read the site-packages of {base}: {out.stderr.strip()[-300:]}")
    dirs = [d for d in json.loads(out.stdout) if os.path.isdir(d)]
    (_site_packages(path) / "_runyard_inherit.pth").write_text("\n".join(dirs) + "\n", encoding="utf-8")
    say(f"inheriting the packages of {base} ({', '.join(dirs)})")
    probe = subprocess.run([str(path / "bin" / "python"), "-c", "import pip"], capture_output=True)
    if probe.returncode != 0:
        _run([_uv(), "pip", "install", "--python", str(path / "bin" / "python"), "pip"], say, limit)


def _site_packages(path: Path) -> Path:
    found = sorted(path.glob("lib/python3*/site-packages"))
    if not found:
        raise EnvironmentBuildError(f"the new environment {path} has no lib/python3.*/site-packages")
    return found[0]


def _link_client(path: Path) -> None:
    """runyard itself, linked (not copied: pure Python, and an editable checkout stays editable) with a small
    dist-info so importlib.metadata finds its version and entry points (the MLflow plugin)."""
    site = _site_packages(path)
    link = site / "runyard"
    if link.is_symlink() or link.exists():
        if link.is_symlink() or link.is_file():
            link.unlink()
        else:
            shutil.rmtree(link)
    link.symlink_to(RUNYARD_PACKAGE, target_is_directory=True)
    version = _runyard_version()
    info = site / f"runyard-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: runyard\nVersion: {version}\n", encoding="utf-8")
    (info / "INSTALLER").write_text("runyard\n", encoding="utf-8")
    try:
        from importlib.metadata import distribution

        entry_points = distribution("runyard").read_text("entry_points.txt")
    except Exception:  # noqa: BLE001 - a source checkout without metadata: no entry points to copy
        entry_points = None
    if entry_points:
        (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def _installed(path: Path) -> list[str]:
    """``name==version`` of every distribution in the environment (read from dist-info folder names: fast)."""
    out = []
    for info in _site_packages(path).glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        out.append(f"{canonical(name)}=={version}")
    return sorted(out)


def _client_links(cache_dir: Path, python: str, requirements: list[str]) -> list[tuple[str, str]] | None:
    """(name in site-packages, absolute source) of runyard's client packages and their dependencies in this
    interpreter, when an environment of ``python`` can load them; None when they must be installed instead.

    Walking the metadata costs ~50 ms, so the answer is kept in ``cache_dir`` until this interpreter's
    site-packages change."""
    import site

    if not _same_python(python):
        return None
    stamp = [sys.executable, _runyard_version(), sorted(requirements)]
    for folder in {*site.getsitepackages(), *[p for p in sys.path if p.endswith("site-packages")]}:
        try:
            stamp.append([folder, os.stat(folder).st_mtime_ns])
        except OSError:
            continue
    stamp = sorted(map(str, stamp))
    cache = cache_dir / ".client-links.json"
    try:
        cached_value = json.loads(cache.read_text(encoding="utf-8"))
        if cached_value["stamp"] == stamp:
            return [tuple(x) for x in cached_value["links"]] if cached_value["links"] is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    links = _walk_client(requirements)
    try:
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"stamp": stamp, "links": links}), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass
    return links


def _walk_client(requirements: list[str]) -> list[tuple[str, str]] | None:
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    marker_env = default_environment()
    seen: set[str] = set()
    links: list[tuple[str, str]] = []
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if canonical(req.name) in seen:
            continue
        seen.add(canonical(req.name))
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            return None
        if req.specifier and dist.version not in req.specifier:
            return None
        base = Path(dist.locate_file(""))
        record = dist.read_text("RECORD") or ""
        tops = {line.split(",")[0].split("/")[0] for line in record.splitlines() if line and not line.startswith("..")}
        links += [(top, str(base / top)) for top in sorted(tops) if top and not top.startswith("__pycache__")
                  and (base / top).exists()]
        for dep in dist.requires or []:
            dep_req = Requirement(dep)
            extras = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if dep_req.marker is None or any(dep_req.marker.evaluate({**marker_env, **e}) for e in extras):
                todo.append(dep_req)
    return links


def _link_distributions(path: Path, links: list[tuple[str, str]]) -> None:
    """Symlink the client's top-level files and copy its metadata into the environment, unless the environment
    installed its own copy of a distribution (the user's pin wins)."""
    site = _site_packages(path)
    present = {canonical(i.name[: -len(".dist-info")].partition("-")[0]) for i in site.glob("*.dist-info")}
    for name, source in links:
        source_path, target = Path(source), site / name
        if target.exists() or target.is_symlink():
            continue
        if name.endswith(".dist-info"):
            if canonical(name[: -len(".dist-info")].partition("-")[0]) in present:
                continue
            # Metadata is copied, without RECORD: a `pip uninstall` in the environment then refuses to remove
            # the linked files instead of deleting them from this interpreter's site-packages.
            target.mkdir()
            for meta in ("METADATA", "entry_points.txt", "top_level.txt"):
                if (source_path / meta).is_file():
                    shutil.copyfile(source_path / meta, target / meta)
            (target / "INSTALLER").write_text("runyard (linked)\n", encoding="utf-8")
        else:
            target.symlink_to(source_path, target_is_directory=source_path.is_dir())


def _runyard_version() -> str:
    from runyard.version import __version__

    return __version__


@functools.lru_cache(maxsize=1)
def _uv() -> str:
    """The uv binary: beside this interpreter (where pip installs it), else where the uv package says, else PATH.

    ``uv.find_uv_bin()`` reads ``sysconfig``, whose lazy first initialisation is not thread-safe (another thread
    saw a half-filled config and it failed with a TypeError), so it is the second choice, and retried."""
    beside = Path(sys.executable).parent / "uv"
    if os.access(beside, os.X_OK):
        return str(beside)
    for _attempt in range(3):
        try:
            from uv import find_uv_bin

            return find_uv_bin()
        except (ImportError, FileNotFoundError):
            break
        except TypeError:
            time.sleep(0.05)
    found = shutil.which("uv")
    if found:
        return found
    raise EnvironmentBuildError("uv is not installed: pip install uv (runyard builds environments with it)")


def _run(argv: list[str], say: Callable[[str], None], limit: _Limit) -> None:
    """Run one build command, its output line by line into the build log; on failure raise with its last lines.

    The command gets its own process group; at the deadline or on a cancel the whole group is killed here (the
    exit status is then not trusted: whoever killed it may also have reaped it, which reads as exit code 0)."""
    limit.check()
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "PIP_PROGRESS_BAR": "off"}
    say("$ " + " ".join(argv))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", env=env, start_new_session=True)
    tail: list[str] = []
    done = threading.Event()
    stopped: list[bool] = []

    def stop_at_limit() -> None:
        while not done.wait(0.1):
            if limit.cancel is not None and limit.cancel.is_set() or time.monotonic() >= limit.deadline:
                stopped.append(True)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the command and whatever it started (build backends)
                except (ProcessLookupError, PermissionError):
                    pass
                return

    watcher = threading.Thread(target=stop_at_limit, name="runyard-build-limit", daemon=True)
    watcher.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            say(line)
            tail = (tail + [line])[-25:]
        code = proc.wait()
    finally:
        done.set()
    if stopped or limit.cancel is not None and limit.cancel.is_set():
        limit.check()
        raise EnvironmentBuildError(f"the environment build took too long and was stopped ({env_vars.ENV_BUILD_TIMEOUT})")
    if code != 0:
        reason = _resolver_message(tail)
        raise EnvironmentBuildError(f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed (exit code {code}):"
                                    f"\n{reason}")


def _resolver_message(lines: list[str]) -> str:
    """The part of uv/pip output that says why: from the first error marker on, else the last lines."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("×", "error:", "ERROR:", "Because")):
            return "\n".join(lines[i:]).strip()
    return "\n".join(lines[-12:]).strip()


def _touch(path: Path) -> None:
    try:
        (path / LAST_USED).touch()
    except OSError:
        pass


# -- the cache ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedEnvironment:
    key: str
    name: str
    path: Path
    python: str
    size: int
    created_at: float
    last_used: float
    packages: tuple[str, ...]


def cached(root: Path, with_size: bool = True) -> list[CachedEnvironment]:
    """The built environments in ``root``, least recently used first."""
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        if not path.is_dir() or not (path / MARKER).is_file():
            continue
        try:
            info = json.loads((path / MARKER).read_text(encoding="utf-8"))
            last = (path / LAST_USED).stat().st_mtime if (path / LAST_USED).exists() else info["created_at"]
        except (OSError, ValueError, KeyError):
            continue
        out.append(CachedEnvironment(path.name, info.get("name", "?"), path, info.get("python", "?"),
                                     _size(path) if with_size else 0, info["created_at"], last,
                                     tuple(info.get("packages") or ())))
    return sorted(out, key=lambda e: e.last_used)


def _size(path: Path) -> int:
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def in_use(path: Path) -> bool:
    """A live process runs this environment's interpreter."""
    import psutil

    prefix = str(path) + os.sep
    for proc in psutil.process_iter(["exe", "cmdline"]):
        try:
            exe = proc.info["exe"] or ""
            argv0 = (proc.info["cmdline"] or [""])[0]
        except (psutil.Error, IndexError):
            continue
        if exe.startswith(prefix) or argv0.startswith(prefix):
            return True
    return False


def prune(root: Path, keep_bytes: int | None = None, older_than_days: float | None = None,
          dry_run: bool = False) -> list[CachedEnvironment]:
    """Delete least-recently-used environments until the cache is at most ``keep_bytes`` (and every one unused
    for ``older_than_days``); environments in use or being built are kept. Returns what was (or would be) removed."""
    from filelock import FileLock, Timeout

    envs = cached(root)
    total = sum(e.size for e in envs)
    removed = []
    for env in envs:  # least recently used first
        too_old = older_than_days is not None and time.time() - env.last_used > older_than_days * 86400
        too_big = keep_bytes is not None and total > keep_bytes
        if not (too_old or too_big) or in_use(env.path):
            continue
        lock = FileLock(str(env.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            if not dry_run:
                shutil.rmtree(env.path, ignore_errors=True)
                Path(str(env.path) + ".lock").unlink(missing_ok=True)
        finally:
            lock.release()
        total -= env.size
        removed.append(env)
    return removed


__all__ = ["EnvironmentPlan", "cached", "client_requirements", "docker_argv", "docker_engine_error", "ensure",
           "env_root", "in_use", "is_ready", "plan", "prune"]
