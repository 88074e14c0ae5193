"""Where packages come from: pip's configuration handed to uv, versions an index offers, wheels on local disk.

uv does not read ``pip.conf``; a machine set up for pip (a company mirror, ``find-links`` with local wheels, a
constraints file) must build environments from the same places, so runyard reads pip's settings and passes them
on — unless uv has index settings of its own (``UV_INDEX_URL``, ``UV_DEFAULT_INDEX``, ``UV_EXTRA_INDEX_URL``,
``UV_INDEX``, ``UV_FIND_LINKS``), which then win.
"""
from __future__ import annotations

import configparser
import json
import os
import re
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

_UV_INDEX_VARS = ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_FIND_LINKS")
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


@dataclass(frozen=True)
class IndexSettings:
    """pip's package sources: ``index_url`` (None: PyPI), extra indexes, ``find_links`` folders/pages, constraints."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    no_index: bool = False  # pip's no-index: find-links only
    from_uv: bool = field(default=False, compare=False)  # uv has its own index settings: leave it alone

    def uv_args(self) -> list[str]:
        """The uv command-line options that make uv use these sources."""
        if self.from_uv:
            return []
        args: list[str] = ["--no-index"] if self.no_index else []
        if self.index_url and not self.no_index:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for link in self.find_links:
            args += ["--find-links", link]
        for path in self.constraints:
            args += ["--constraint", path]
        if len(self.indexes()) > 1:
            # pip takes the best version across all its indexes; uv, by default, only the first index that has
            # the package (a local mirror with an old release would then hide the newer one on the next index)
            args += ["--index-strategy", "unsafe-best-match"]
        return args

    def indexes(self) -> list[str]:
        """Index URLs in the order uv consults them (extra indexes first, then the default); none with no-index."""
        return [] if self.no_index else [*self.extra_index_urls, self.index_url or "https://pypi.org/simple"]


def pip_settings(environ: dict[str, str] | None = None) -> IndexSettings:
    """pip's configuration files (global, user, site, ``PIP_CONFIG_FILE``), then ``PIP_*`` variables, as pip reads them."""
    env = os.environ if environ is None else environ
    if any(env.get(v) for v in _UV_INDEX_VARS):
        return IndexSettings(from_uv=True)
    values: dict[str, str] = {}
    if env.get("PIP_CONFIG_FILE") != os.devnull:
        for path in _config_files(env):
            parser = configparser.RawConfigParser()
            try:
                parser.read(path, encoding="utf-8")
            except (configparser.Error, OSError, UnicodeDecodeError):
                continue
            for section in ("global", "install"):
                if parser.has_section(section):
                    values.update({k.replace("_", "-"): v for k, v in parser.items(section)})
    for key in ("index-url", "extra-index-url", "find-links", "constraint", "no-index"):
        var = "PIP_" + key.upper().replace("-", "_")
        if env.get(var):
            values[key] = env[var]
    return IndexSettings(
        no_index=values.get("no-index", "").lower() in ("1", "true", "yes", "on"),
        index_url=values.get("index-url") or None,
        extra_index_urls=tuple(values.get("extra-index-url", "").split()),
        find_links=tuple(values.get("find-links", "").split()),
        constraints=tuple(values.get("constraint", "").split()),
    )


def _config_files(env) -> list[str]:
    xdg_dirs = env.get("XDG_CONFIG_DIRS", "/etc/xdg").split(os.pathsep)
    home = Path(env.get("HOME", "~")).expanduser()
    files = ["/etc/pip.conf", *[os.path.join(d, "pip", "pip.conf") for d in reversed(xdg_dirs) if d],
             str(home / ".pip" / "pip.conf"), os.path.join(env.get("XDG_CONFIG_HOME", str(home / ".config")), "pip", "pip.conf"),
             os.path.join(sys.prefix, "pip.conf")]
    if env.get("PIP_CONFIG_FILE"):
        files.append(env["PIP_CONFIG_FILE"])
    return [f for f in files if os.path.isfile(f)]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def available_versions(package: str, settings: IndexSettings, timeout: float = 10.0,
                       python: tuple[int, int] | None = None) -> list[str] | None:
    """Every version of ``package`` the configured indexes and find-links offer, oldest first; None when no
    source could be read (offline), so callers fall back to letting the resolver decide. With ``python``, only
    versions with a wheel for that CPython on this platform count (no source builds)."""
    from packaging.version import InvalidVersion, Version

    def fitting(names) -> list[str]:
        return [n for n in names if python is None or wheel_fits(Path(n), python)]

    found: set[str] = set()
    readable = False
    for link in settings.find_links:
        folder = _local_folder(link)
        if folder is not None and folder.is_dir():
            readable = True
            found |= {v for n, v in _wheel_versions(fitting(p.name for p in folder.iterdir())) if n == canonical(package)}
    for index in settings.indexes():
        names = _index_files(index, canonical(package), timeout)
        if names is None:
            continue
        readable = True
        found |= {v for n, v in _wheel_versions(fitting(names)) if n == canonical(package)}
        if python is None:
            found |= {v for n, v in _sdist_versions(names) if n == canonical(package)}
    if not readable:
        return None
    good = []
    for v in found:
        try:
            good.append((Version(v), v))
        except InvalidVersion:
            continue
    return [v for _, v in sorted(good)]


def local_wheels(package: str, settings: IndexSettings) -> list[tuple[str, Path]]:
    """(version, path) of the wheels of ``package`` lying in local find-links folders."""
    out = []
    for link in settings.find_links:
        folder = _local_folder(link)
        if folder is None or not folder.is_dir():
            continue
        for path in folder.iterdir():
            m = _WHEEL.match(path.name)
            if m and canonical(m["name"]) == canonical(package):
                out.append((m["version"], path))
    return out


def wheel_fits(path: Path, python: tuple[int, int]) -> bool:
    """A wheel's python tag accepts this CPython version and its platform this machine (Linux x86-64 or any)."""
    import platform

    m = _WHEEL.match(path.name)
    if not m:
        return False
    tags = m["py"].split(".")
    tag = f"cp{python[0]}{python[1]}"
    if not any(t in (tag, "py3", f"py{python[0]}", "py2.py3") for t in tags):
        return False
    plat = m["plat"]
    return plat == "any" or (sys.platform.startswith("linux") and platform.machine() in plat and "linux" in plat)


def _local_folder(link: str) -> Path | None:
    if link.startswith("file://"):
        return Path(urllib.parse.urlparse(link).path)
    if "://" not in link:
        return Path(link).expanduser()
    return None


def _wheel_versions(names) -> set[tuple[str, str]]:
    return {(canonical(m["name"]), m["version"]) for n in names if (m := _WHEEL.match(n))}


def _sdist_versions(names) -> set[tuple[str, str]]:
    out = set()
    for n in names:
        m = re.match(r"^(.+?)-(\d[^-]*?)\.(?:tar\.gz|zip)$", n)
        if m:
            out.add((canonical(m.group(1)), m.group(2)))
    return out


def _index_files(index: str, name: str, timeout: float) -> list[str] | None:
    """File names on a simple-index project page (PEP 691 JSON or PEP 503 HTML); None when unreadable."""
    url = index.rstrip("/") + f"/{name}/"
    if url.startswith("file://"):
        folder = Path(urllib.parse.urlparse(url).path)
        page = folder / "index.html"
        if not page.is_file():
            return None
        text = page.read_text(encoding="utf-8", errors="replace")
        return _html_files(text)
    request = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1", "User-Agent": "runyard"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode("utf-8", errors="replace")
            kind = response.headers.get("Content-Type", "")
    except (OSError, ValueError):
        return None
    if "json" in kind:
        try:
            return [f["filename"] for f in json.loads(body).get("files", [])]
        except (ValueError, KeyError, TypeError):
            return None
    return _html_files(body)


def _html_files(text: str) -> list[str]:
    return [urllib.parse.unquote(m.split("#")[0].rsplit("/", 1)[-1]) for m in re.findall(r'href="([^"]+)"', text)]


__all__ = ["IndexSettings", "available_versions", "canonical", "local_wheels", "pip_settings", "wheel_fits"]
