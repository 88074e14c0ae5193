"""Images runyard makes without a registry: the base image (Debian from the apt mirror this machine already uses, by
mmdebstrap, imported into the engine) and derived images (a container of an image that runs a set-up script, then
committed — how a model service becomes an image)."""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from runyard.environments.builder import run_command
from runyard.environments.docker import BASE_IMAGE, DockerError, Engine, docker_argv, engine, split_tag
from runyard.errors import ComputeError

BASE_PACKAGES = ("python3", "python3-venv", "openmpi-bin", "ca-certificates")  # Python, venvs, mpirun, TLS roots
DEFAULT_SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"


def debian_mirror(suite: str = DEFAULT_SUITE) -> str:
    """The Debian mirror apt is configured with (deb822 ``.sources`` files, then ``sources.list``) for ``suite``;
    Debian's own address when apt names none."""
    candidates: list[tuple[str, list[str]]] = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
            if fields.get("Types", "deb").split()[0] == "deb" and fields.get("URIs"):
                candidates += [(uri, fields.get("Suites", "").split()) for uri in fields["URIs"].split()]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                candidates.append((parts[1], [parts[2]]))
    for uri, suites in candidates:
        if suite in suites and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def build_base(tag: str = BASE_IMAGE, suite: str = DEFAULT_SUITE, packages: Sequence[str] = BASE_PACKAGES,
               mirror: str | None = None, cache_dir: Path | None = None, force: bool = False,
               say: Callable[[str], None] = print, show_progress: bool | None = None) -> str:
    """Make ``tag`` on the engine: a minimal Debian ``suite`` with ``packages``, from the apt mirror, no registry.
    The root file system is kept as a tarball in ``cache_dir`` (one per suite, packages and mirror), so a new
    engine gets the image in seconds. Returns the image id; an existing image is kept unless ``force``."""
    found = engine()
    existing = found.image(tag)
    if existing is not None and not force:
        say(f"{tag} is on the engine ({existing['Id'][7:19]}); --force builds it again")
        return existing["Id"]
    mirror = mirror or debian_mirror(suite)
    cache_dir = Path(cache_dir or Path.home() / ".cache" / "runyard" / "images").expanduser()
    digest = hashlib.sha256(f"{suite} {mirror} {' '.join(sorted(packages))}".encode()).hexdigest()[:12]
    tarball = cache_dir / f"rootfs-{suite}-{digest}.tar"
    if force or not tarball.is_file():
        _debootstrap(tarball, suite, packages, mirror, say)
    else:
        say(f"root file system cached: {tarball}")
    image = import_tarball(found, tarball, tag, changes=['CMD ["python3"]', "ENV LANG=C.UTF-8"],
                           show_progress=show_progress)
    say(f"{tag} is built ({image[7:19]}, {tarball.stat().st_size / 1e6:.0f} MB): Debian {suite} with "
        + ", ".join(packages))
    return image


def _debootstrap(tarball: Path, suite: str, packages: Sequence[str], mirror: str, say: Callable[[str], None]) -> None:
    from runyard.progress import show_build

    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise ComputeError("mmdebstrap is not installed: apt-get install mmdebstrap (it makes the base image from "
                           "the Debian mirror, with no registry)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".{os.getpid()}.partial.tar")
    argv = [tool, "--variant=minbase", f"--include={','.join(packages)}", suite, str(partial), mirror]
    say(f"making a Debian {suite} root file system from {mirror} (about a minute): {' '.join(argv)}")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    tail: list[str] = []

    def lines() -> Iterable[str]:
        for line in proc.stdout:
            tail.append(line.rstrip())
            del tail[:-20]
            yield line
    try:
        show_build(lines(), title="making the base image")
        code = proc.wait()
    except BaseException:
        proc.kill()
        partial.unlink(missing_ok=True)
        raise
    if code != 0:
        partial.unlink(missing_ok=True)
        raise ComputeError(f"mmdebstrap failed (exit code {code}):\n" + "\n".join(tail[-12:]))
    os.replace(partial, tarball)


def import_tarball(found: Engine, tarball: Path, tag: str, changes: Sequence[str] = (),
                   show_progress: bool | None = None) -> str:
    """``docker import`` through the API, with a progress bar over the bytes sent; returns the image id."""
    import json
    import urllib.parse

    from runyard.progress import ByteBar

    repo, version = split_tag(tag)
    query = urllib.parse.urlencode({"fromSrc": "-", "repo": repo, "tag": version, "changes": list(changes)}, doseq=True)
    size = tarball.stat().st_size
    conn = found.connection(timeout=600)
    try:
        conn.putrequest("POST", f"/images/create?{query}")
        conn.putheader("Content-Type", "application/x-tar")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        with open(tarball, "rb") as src, ByteBar(f"importing {tag}", size, show_progress) as bar:
            while chunk := src.read(1 << 20):
                conn.send(chunk)
                bar.advance(len(chunk))
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
    finally:
        conn.close()
    if resp.status != 200:
        raise DockerError(f"the engine could not import {tarball}: {resp.status} {body[-500:]}")
    for line in body.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if item.get("error"):
            raise DockerError(f"the engine could not import {tarball}: {item['error']}")
    image = found.image(tag)
    if image is None:
        raise DockerError(f"the engine imported {tarball} but has no image {tag}")
    return image["Id"]


def commit_derived(base: str, script: str, tag: str, changes: Sequence[str], mounts: Sequence[str] = (),
                   read_only: Sequence[str] = (), env: Mapping[str, str] | None = None,
                   say: Callable[[str], None] = print, timeout: float = 1800) -> str:
    """A new image ``tag``: ``script`` (sh) run as root in a container of ``base`` with the host folders given
    mounted, its output said line by line, then the container committed with Dockerfile-style ``changes``. The
    container is removed whatever happens. Returns the new image's id."""
    found = engine()
    name = f"runyard-image-build-{os.getpid()}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}"
    with tempfile.TemporaryDirectory(prefix="runyard-image-") as scratch:
        argv = docker_argv({"image": base}, ["sh", "-ec", script], list(env or {}), scratch, mounts=mounts,
                           read_only=read_only, name=name, labels={"runyard.image-build": tag},
                           user="0:0")  # root: it installs into the image's own folders
        try:
            run_command(argv, say, timeout, dict(env or {}))
            say(f"committing {tag}")
            return found.commit(name, tag, changes, comment="built by runyard")
        finally:
            try:
                found.remove(name)
            except (OSError, DockerError):
                pass
