"""Building a planned environment: ``ensure()`` (in the run's supervisor, Preparing phase) builds it under a file
lock — concurrent runs of one spec build it once — with uv (conda where asked, inside the image for docker),
streaming the build log; a build that fails leaves nothing behind and is not cached."""
from __future__ import annotations

import functools
import json
import os
import shutil
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard import env_vars
from runyard.config.package_index import canonical
from runyard.environments import horovod
from runyard.environments.docker import (
    BUILD_LABEL,
    Engine,
    docker_argv,
    docker_command,
    host_access,
    remove_labeled,
)
from runyard.environments.planning import (
    LAST_USED,
    MARKER,
    RUNYARD_PACKAGE,
    EnvironmentPlan,
    _build_instructions,
    _same_python,
    is_ready,
)
from runyard.errors import EnvironmentBuildError


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
    uv = uv_binary()
    steps = 3 + bool(request["conda"]) + bool(request.get("horovod"))
    step = iter(range(1, steps + 1))
    python = str(path / "bin" / "python")
    if plan_.docker:
        _build_in_container(path, plan_, build, say, limit)
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
    install_list, constraints = install_files(path, install + client, request["constraints"])
    constraint_args = ["--constraint", str(constraints)] if constraints else []
    say(f"[{next(step)}/{steps}] installing {len(install)} package(s)" + (f": {' '.join(install)}" if install else "")
        + (f" and runyard's client ({len(client)} packages)" if client else ""))
    if not install and not client:
        pass  # nothing to install: the environment is the interpreter and runyard's client
    elif request["inherit_from"]:
        # uv does not see packages a venv inherits (astral-sh/uv#4466) and would install them again; pip does.
        _run([python, "-m", "pip", "install", "--no-compile", "--disable-pip-version-check", "--no-input",
              "-r", str(install_list), *constraint_args, *build["pip_options"]], say, limit)
    else:
        _run([uv, "pip", "install", "--python", python, "-r", str(install_list), *constraint_args,
              "--no-config", *uv_install_options(build["uv_options"])], say, limit)
    if request.get("horovod"):
        say(f"[{next(step)}/{steps}] building Horovod {request['horovod']['version']} for the environment's frameworks")
        horovod.build(python, horovod.cache_dir(), uv, uv_install_options(build["uv_options"]), say,
                      lambda argv, env: _run(argv, say, limit, env))
    say(f"[{next(step)}/{steps}] linking runyard {_runyard_version()}"
        + (f" and its client packages ({', '.join(n.partition('-')[0] for n, _ in linked if n.endswith('.dist-info'))})"
           if linked else "")
        + " into the environment")
    if linked:
        _link_distributions(path, linked)
    _finish(path, plan_, build, say, limit)


def _build_in_container(path: Path, plan_: EnvironmentPlan, build: dict[str, Any], say, limit: _Limit) -> None:
    """A venv made by the image's own Python, inside a container, in the cached folder (mounted at its own path):
    its packages and runyard's client installed there by uv (this machine's, mounted with the CA bundle, pip's
    configuration and the local package folders it names, so the container reaches the same indexes)."""
    docker = plan_.docker or {}
    request = build["request"]
    if docker.get("dockerfile"):
        _build_dockerfile_image(docker, say, limit)
    uv = uv_binary()
    access = host_access(build["uv_options"], uv)
    Path(access.env["UV_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True)
    install = list(build["install"])
    requirements, constraints = install_files(path, install + request["client"], request["constraints"])
    image = docker["image"]
    script = container_install_script(str(path), requirements, constraints, build["uv_options"], image, uv,
                                      request.get("interpreter") or "", request.get("python") or "",
                                      bool(request.get("system_site_packages")))
    say(f"[1/2] building the environment inside {image} ({len(install)} package(s)"
        + (f": {' '.join(install)}" if install else "") + " and runyard's client)")
    label = {BUILD_LABEL: plan_.key or "build"}
    argv = docker_argv(docker, ["sh", "-c", script], access.env, str(path),
                       mounts=[access.env["UV_CACHE_DIR"]], read_only=[*access.read_only, RUNYARD_PACKAGE],
                       labels=label, remove=True)
    try:
        _run(argv, say, limit, env=access.env)
    finally:
        remove_labeled(BUILD_LABEL, label[BUILD_LABEL])  # a killed build's container goes too
    say(f"[2/2] linking runyard {_runyard_version()} into the environment")


def install_files(folder: Path, requirements: list[str], constraints: list[str]) -> tuple[Path, Path | None]:
    """What a build installs, as the files uv/pip read, kept in ``folder`` (the record of what was asked)."""
    listed = folder / "runyard-requirements.txt"
    listed.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    if not constraints:
        return listed, None
    constraining = folder / "runyard-constraints.txt"
    constraining.write_text("\n".join(constraints) + "\n", encoding="utf-8")
    return listed, constraining


def uv_install_options(options: list[str]) -> list[str]:
    """pip's index options as uv takes them (``--pre`` is ``--prerelease=allow``)."""
    return ["--prerelease=allow" if o == "--pre" else o for o in options]


def container_install_script(venv: str, requirements: Path, constraints: Path | None, uv_options: list[str],
                             image: str, uv: str, interpreter: str = "", want: str = "",
                             system_site: bool = False) -> str:
    """sh run in a container of ``image``: find its Python (``interpreter``, else python3, else python — exit 97 with
    a clear line when there is none; 98 when it is not version ``want``), make a venv at ``venv`` with it, and install
    ``requirements`` there with this machine's ``uv`` (mounted). The environment builds and model packages share it."""
    missing = f"{interpreter} is not in it" if interpreter else "neither python3 nor python is on its PATH"
    constraint = f" --constraint {shlex.quote(str(constraints))}" if constraints else ""
    options = " ".join(shlex.quote(o) for o in uv_install_options(uv_options))
    return "\n".join([
        "set -e",
        f"PY={shlex.quote(interpreter)}",
        '[ -n "$PY" ] || PY=$(command -v python3 || command -v python || true)',
        'if [ -z "$PY" ] || ! command -v "$PY" >/dev/null; then',
        f"  echo {shlex.quote(f'runyard: image {image} has no python: {missing} (runyard/base:bookworm from `runyard image build-base` has one)')} >&2; exit 97",
        "fi",
        """VERSION=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')""",
        'echo "python in the image: $PY ($VERSION)"',
        f'if [ -n "{want}" ] && [ "$VERSION" != "{want}" ] && [ "${{VERSION#{want}.}}" = "$VERSION" ]; then',
        f'  echo "runyard: the environment asks for python {want} but the image\'s $PY is $VERSION" >&2; exit 98',
        "fi",
        f'"$PY" -m venv --without-pip{" --system-site-packages" if system_site else ""} {shlex.quote(venv)}',
        f"{shlex.quote(uv)} pip install --python {shlex.quote(venv + '/bin/python')} "
        f"-r {shlex.quote(str(requirements))}{constraint} --no-config {options}",
    ])


def _build_dockerfile_image(docker: dict[str, Any], say, limit: _Limit) -> None:
    """The image of an environment's ``base_dockerfile`` (built once per text, offline: no pull)."""
    if Engine.from_env().image(docker["image"]) is not None:
        say(f"image {docker['image']} (the environment's Dockerfile) is built")
        return
    with tempfile.TemporaryDirectory(prefix="runyard-dockerfile-") as context:
        (Path(context) / "Dockerfile").write_text(docker["dockerfile"], encoding="utf-8")
        say(f"building image {docker['image']} from the environment's Dockerfile")
        _run([docker_command(), "build", "--pull=false", "--tag", docker["image"], context], say, limit,
             env={"DOCKER_BUILDKIT": "0"})


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
        _run([uv_binary(), "pip", "install", "--python", str(path / "bin" / "python"), "pip"], say, limit)


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
    client_dist_info(site)


def client_dist_info(folder: Path) -> Path:
    """runyard's small dist-info in ``folder`` (a site-packages): its version and entry points, so that
    importlib.metadata finds them where runyard is linked or copied without pip."""
    version = _runyard_version()
    info = folder / f"runyard-{version}.dist-info"
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
    return info


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
def uv_binary() -> str:
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


def run_command(argv: list[str], say: Callable[[str], None], timeout: float, env: dict[str, str] | None = None) -> None:
    """One long command (an image's set-up) as a build step: its output line by line to ``say``, killed with its
    process group after ``timeout`` seconds; raises EnvironmentBuildError with its last lines when it fails."""
    _run(argv, say, _Limit(time.monotonic() + timeout), env)


def _run(argv: list[str], say: Callable[[str], None], limit: _Limit, env: dict[str, str] | None = None) -> None:
    """Run one build command, its output line by line into the build log; on failure raise with its last lines.

    The command gets its own process group; at the deadline or on a cancel the whole group is killed here (the
    exit status is then not trusted: whoever killed it may also have reaped it, which reads as exit code 0)."""
    limit.check()
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1", "PIP_PROGRESS_BAR": "off", **(env or {})}
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
        if line.lstrip().startswith(("×", "error:", "ERROR:", "Because", "runyard:")):
            return "\n".join(lines[i:]).strip()
    return "\n".join(lines[-12:]).strip()


def _touch(path: Path) -> None:
    try:
        (path / LAST_USED).touch()
    except OSError:
        pass
