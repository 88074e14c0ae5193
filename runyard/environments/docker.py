"""Containers: the Docker engine (its API, spoken over its socket), the ``docker run`` that wraps one process of a
run, and what a container needs from this machine to install packages (uv, the CA bundle, pip's configuration).

runyard never pulls: an image is on the engine already (``runyard image build-base`` makes one offline, ``docker
build``/``docker import``/``docker load`` others). The engine is found as the docker command finds it:
``DOCKER_HOST`` (``unix://PATH`` or ``tcp://HOST:PORT``), else ``/var/run/docker.sock``. The API is spoken directly
(a few milliseconds a call, whatever docker client is on PATH); ``docker run`` and ``docker build`` go through the
docker command, which streams their output.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runyard.errors import ComputeError, ConfigError

DEFAULT_SOCKET = "/var/run/docker.sock"
RUN_LABEL = "runyard.run"  # every container of a run carries its run id (cleanup finds them by it)
RANK_LABEL = "runyard.rank"
SERVICE_LABEL = "runyard.service"
BUILD_LABEL = "runyard.build"
BASE_IMAGE = "runyard/base:bookworm"  # what `runyard image build-base` makes: Debian, python3, venv, Open MPI
START_HINT = ("start one — `dockerd` as root (Debian: apt-get install docker.io), `systemctl start docker`, or "
              "`bash scripts/dockerd.sh start` for a private one — and point DOCKER_HOST at it when it listens "
              "elsewhere than /var/run/docker.sock")


class DockerError(ComputeError):
    """The engine refused or failed a request."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Engine:
    """A Docker engine's API: the calls runyard makes (inspect, list, remove, commit), each a few milliseconds."""

    host: str  # DOCKER_HOST's form: unix:///path or tcp://host:port

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Engine":
        env = os.environ if env is None else env
        return cls(env.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}")

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A connection to the engine, for a request whose body or answer is streamed (an import, an export)."""
        scheme, _, rest = self.host.partition("://")
        if scheme == "unix":
            return _UnixConnection(rest, timeout)
        if scheme in ("tcp", "http"):
            host, _, port = rest.rstrip("/").partition(":")
            return http.client.HTTPConnection(host, int(port or 2375), timeout=timeout)
        raise ConfigError(f"DOCKER_HOST={self.host!r} is not unix:///PATH or tcp://HOST:PORT")

    def call(self, method: str, path: str, query: Mapping[str, Any] | None = None, body: Any = None,
             timeout: float = 30.0, ok: Iterable[int] = (200, 201, 204, 304)) -> tuple[int, Any]:
        """One API request; returns (status, decoded JSON or None). A status not in ``ok`` nor 404 raises."""
        conn = self.connection(timeout)
        url = path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        payload = json.dumps(body).encode() if body is not None else None
        try:
            conn.request(method, url, body=payload, headers={"Content-Type": "application/json"} if payload else {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        decoded = None
        if data:
            try:
                decoded = json.loads(data)
            except ValueError:
                decoded = data.decode(errors="replace")
        if resp.status not in ok and resp.status != 404:
            message = decoded.get("message") if isinstance(decoded, dict) else decoded
            raise DockerError(f"the Docker engine answered {resp.status} to {method} {path}: {message}")
        return resp.status, decoded

    def version(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.call("GET", "/version", timeout=timeout)[1]

    def image(self, name: str) -> dict[str, Any] | None:
        """The image's inspection (``Id``, ``Config``…), None when the engine has no such image."""
        status, data = self.call("GET", f"/images/{urllib.parse.quote(name, safe='/:@')}/json")
        return data if status == 200 else None

    def image_names(self) -> list[str]:
        """The tags of the engine's images (``repo:tag``), sorted."""
        images = self.call("GET", "/images/json")[1] or []
        return sorted({t for image in images for t in image.get("RepoTags") or [] if t != "<none>:<none>"})

    def containers(self, label: str, value: str | None = None) -> list[dict[str, Any]]:
        """Every container (running or not) with ``label`` (=``value``)."""
        wanted = label if value is None else f"{label}={value}"
        return self.call("GET", "/containers/json", {"all": "1", "filters": json.dumps({"label": [wanted]})})[1] or []

    def inspect(self, container: str) -> dict[str, Any] | None:
        status, data = self.call("GET", f"/containers/{container}/json")
        return data if status == 200 else None

    def remove(self, container: str) -> None:
        """Stop (SIGKILL) and remove a container and its anonymous volumes; gone already is fine."""
        self.call("DELETE", f"/containers/{container}", {"force": "1", "v": "1"}, ok=(204, 409))

    def commit(self, container: str, image: str, changes: Sequence[str], comment: str = "") -> str:
        """Make ``image`` (``repo:tag``) of a container's file system, with Dockerfile-style ``changes`` (CMD, ENV…)."""
        repo, tag = split_tag(image)
        _, data = self.call("POST", "/commit", {"container": container, "repo": repo, "tag": tag, "comment": comment,
                                                "changes": list(changes)}, body={}, timeout=600)
        return data["Id"]

    def remove_image(self, name: str) -> None:
        self.call("DELETE", f"/images/{urllib.parse.quote(name, safe='/:@')}", {"force": "1"}, ok=(200, 409))


def split_tag(image: str) -> tuple[str, str]:
    """``repo:tag`` → (repo, tag); ``latest`` when there is no tag (a registry's ``host:port/`` is not one)."""
    repo, sep, tag = image.rpartition(":")
    return (repo, tag) if sep and "/" not in tag else (image, "latest")


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")


def check_image_name(name: str) -> str:
    """``name`` when Docker takes it as an image reference (``repo[/more]:tag``, lower case); else a ConfigError."""
    if not isinstance(name, str) or len(name) > 255 or not _IMAGE_NAME.match(name):
        raise ConfigError(f"{name!r} is not an image name Docker takes: lower-case letters, digits and . _ - in "
                          "slash-separated parts, with an optional :tag (e.g. 'digits:1', 'team/digits:v2')")
    return name


def engine() -> Engine:
    """The engine this process talks to, or ComputeError saying what is wrong and how to start one."""
    found = Engine.from_env()
    problem = engine_problem(found)
    if problem:
        raise ComputeError(f"{problem} — {START_HINT}")
    return found


def engine_problem(found: Engine | None = None) -> str | None:
    """None when a Docker engine answers; else what is wrong."""
    found = found or Engine.from_env()
    try:
        found.version(timeout=10)
    except (OSError, http.client.HTTPException, DockerError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return f"no Docker engine answers at {found.host} ({reason})"
    if shutil.which("docker") is None:
        return "a Docker engine answers but there is no docker command on PATH (apt-get install docker.io)"
    return None


def docker_engine_error() -> str | None:
    """What is wrong with the engine, with how to start one; None when it answers."""
    problem = engine_problem()
    return f"{problem} — {START_HINT}" if problem else None


def image_id(name: str, found: Engine | None = None) -> str:
    """The id of a local image; a ConfigError listing the local images when there is no such image."""
    return local_image(name, found)["Id"]


def local_image(name: str, found: Engine | None = None) -> dict[str, Any]:
    """A local image's inspection; a ConfigError listing the local images when there is no such image."""
    found = found or engine()
    image = found.image(name)
    if image is None:
        names = found.image_names()
        listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "") if names else "none"
        raise ConfigError(f"docker image {name!r} is not on this machine's Docker engine ({found.host}); runyard never "
                          f"pulls — build or load it first (`runyard image build-base` makes {BASE_IMAGE}; docker "
                          f"build, docker import or docker load others). Local images: {listed}")
    return image


# -- docker run ----------------------------------------------------------------------------------------------------
def container_name(run_id: str, rank: int | str) -> str:
    return f"runyard-{run_id}-{rank}"


def docker_argv(docker: Mapping[str, Any], argv: Sequence[str], env_names: Iterable[str], workdir: str,
                mounts: Iterable[str] = (), read_only: Iterable[str] = (), gpus: str | None = None,
                name: str | None = None, labels: Mapping[str, str] | None = None, remove: bool = False,
                user: str | None = None) -> list[str]:
    """``docker run`` of one process, never pulling: ``mounts`` (read-write) and ``read_only`` at their own paths, the variables
    ``env_names`` passed by name (their values come from the docker command's environment), the host network
    (rendezvous addresses stay valid), ``--init`` (a signal reaches the script), this user's uid (outputs are not
    root's; ``user`` another), the config's resource settings (shm_size, memory, cpus), ``gpus`` as a device
    request."""
    cmd = [docker_command(), "run", "--pull", "never", "--init", "--network", "host", "--workdir", workdir,
           "--user", user or f"{os.getuid()}:{os.getgid()}"]
    if remove:
        cmd.append("--rm")
    if name:
        cmd += ["--name", name]
    for key, value in sorted((labels or {}).items()):
        cmd += ["--label", f"{key}={value}"]
    writable = list(dict.fromkeys([workdir, *mounts]))
    for path in writable:
        cmd += ["--volume", f"{path}:{path}"]
    for path in dict.fromkeys(read_only):
        if path not in writable:
            cmd += ["--volume", f"{path}:{path}:ro"]
    for env_name in sorted(set(env_names)):
        cmd += ["--env", env_name]
    if docker.get("shm_size"):
        cmd += ["--shm-size", str(docker["shm_size"])]
    if docker.get("memory"):
        cmd += ["--memory", str(docker["memory"]), "--memory-swap", str(docker["memory"])]  # no swap beyond the limit
    if docker.get("cpus"):
        cmd += ["--cpus", str(docker["cpus"])]
    if gpus:
        cmd += ["--gpus", f'"device={gpus}"']  # the quotes keep a list of devices one value (docker's CSV parsing)
    return cmd + [str(a) for a in docker.get("arguments") or []] + [docker["image"], *argv]


def docker_command() -> str:
    return shutil.which("docker") or "docker"


def remove_containers(run_id: str, found: Engine | None = None) -> dict[int, dict[str, Any]]:
    """Remove every container of a run (killing those still running); returns each rank's last state (``OOMKilled``,
    ``ExitCode``) as the engine saw it, for the run's error. An engine that does not answer removes nothing."""
    return remove_labeled(RUN_LABEL, run_id, found)


def remove_labeled(label: str, value: str, found: Engine | None = None) -> dict[int, dict[str, Any]]:
    """Remove every container whose ``label`` is ``value``; returns the last state of those that had ended, by rank."""
    found = found or Engine.from_env()
    states: dict[int, dict[str, Any]] = {}
    try:
        listed = found.containers(label, value)
        for item in listed:
            details = found.inspect(item["Id"]) if item.get("State") != "running" else None
            rank = (item.get("Labels") or {}).get(RANK_LABEL)
            if details is not None and rank is not None and rank.lstrip("-").isdigit():
                states[int(rank)] = details.get("State") or {}
            found.remove(item["Id"])
    except (OSError, http.client.HTTPException, DockerError):
        pass
    return states


def out_of_memory(state: Mapping[str, Any] | None) -> bool:
    return bool(state and state.get("OOMKilled"))


# -- what a container needs from this machine to install packages -----------------------------------------------------
_PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip", "~/.config/pip/pip.conf", "~/.pip/pip.conf")


@dataclass(frozen=True)
class HostAccess:
    """Read-only mounts and variables that let a container reach the package indexes this machine uses."""

    read_only: tuple[str, ...]
    env: dict[str, str]


def host_access(options: Sequence[str] = (), uv: str | None = None) -> HostAccess:
    """The CA bundle (a proxy's CA included), pip's configuration files and variables, the local folders the index
    ``options`` name (``--find-links /dir``, ``file://`` indexes, constraint files — pip's configuration as uv takes
    it), uv itself, and where uv's cache is."""
    mounts: list[str] = []
    env: dict[str, str] = {"UV_LINK_MODE": "copy", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    bundle = os.environ.get("SSL_CERT_FILE") or next(
        (p for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt") if os.path.isfile(p)), None)
    if bundle and os.path.isfile(bundle):
        mounts.append(os.path.realpath(bundle) if os.path.islink(bundle) else bundle)
        env.update(SSL_CERT_FILE=mounts[-1], PIP_CERT=mounts[-1], REQUESTS_CA_BUNDLE=mounts[-1])
    configured = [os.environ.get("PIP_CONFIG_FILE", "")] + [os.path.expanduser(p) for p in _PIP_CONFIGS]
    for path in configured:
        if path and os.path.exists(path):
            mounts.append(path)
    for name, value in os.environ.items():
        if name.startswith(("PIP_", "UV_")) and name not in env:
            env[name] = value
    for value in [*options, *env.values()]:  # options: pip's configuration as uv takes it (pip_settings)
        for part in str(value).split():
            path = urllib.parse.urlparse(part).path if part.startswith("file://") else part
            if part.startswith("file://") and os.path.basename(path.rstrip("/")) == "simple":
                path = os.path.dirname(path.rstrip("/"))  # a PEP 503 index's pages link to files beside simple/
            if path.startswith("/") and os.path.exists(path) and path not in mounts:
                mounts.append(path.rstrip("/") or "/")
    if uv:
        mounts.append(uv)
    cache = os.environ.get("UV_CACHE_DIR") or os.path.expanduser("~/.cache/uv")
    env["UV_CACHE_DIR"] = cache
    return HostAccess(tuple(dict.fromkeys(m for m in mounts if m != "/")), env)  # uv's cache is mounted writable
