"""Framework pins: which package and version a framework estimator puts in its environment.

    TensorFlow(framework_version="2.21")              → tensorflow-cpu==2.21.*   (use_gpu: tensorflow[and-cuda])
    PyTorch(framework_version="2.13")                 → torch==2.13.0+cpu from a local wheel when one lies in pip's
                                                        find-links, else torch==2.13.* from PyTorch's CPU index
    SKLearn(framework_version="1.9")                  → scikit-learn==1.9.*
"""
from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass

from packaging.version import Version

from runyard.errors import ConfigError
from runyard.config.package_index import IndexSettings, available_versions, local_wheels, wheel_fits


@dataclass(frozen=True)
class Framework:
    name: str
    cpu_package: str
    gpu_package: str
    default_version: str
    cpu_local_label: str | None = None  # local version label of CPU-only builds ("+cpu")
    cpu_index: str | None = None  # where CPU-only builds live when no local wheel does
    max_python: tuple[int, int] | None = None  # the newest Python its releases run on (None: no limit known)
    companions: tuple[str, ...] = ()  # what Azure's image for it held beside it, that scripts import unasked

    def package(self, use_gpu: bool) -> str:
        return self.gpu_package if use_gpu else self.cpu_package

    def check_python(self, python: tuple[int, int]) -> None:
        """Refuse, naming the way out, a framework whose releases cannot run on this Python."""
        if self.max_python is None or python <= self.max_python:
            return
        newest = "%d.%d" % self.max_python
        raise ConfigError(
            f"{self.name} cannot be installed for Python {python[0]}.{python[1]}: its last releases support Python "
            f"<= {newest} (and NumPy 1), and this environment would be built for {python[0]}.{python[1]}. Run it in "
            f"a container image that has it — {self.name}(..., custom_docker_image='<an image with Python "
            f"{newest} and {self.cpu_package}>', user_managed=True) — or port the script to PyTorch")


# Azure's framework images and curated environments carried the scientific stack with the framework (numpy, pandas,
# scipy, scikit-learn, matplotlib, pillow) and TensorBoard; scripts written for them import these without asking.
# (torchvision is not offered by the package indexes here, so PyTorch's environment cannot carry it.)
_SCIENTIFIC = ("numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pillow")

FRAMEWORKS = {
    "TensorFlow": Framework("TensorFlow", "tensorflow-cpu", "tensorflow[and-cuda]", "2.21",
                            companions=(*_SCIENTIFIC, "tensorboard")),
    "PyTorch": Framework("PyTorch", "torch", "torch", "2.13", cpu_local_label="+cpu",
                         cpu_index="https://download.pytorch.org/whl/cpu", companions=(*_SCIENTIFIC, "tensorboard")),
    "SKLearn": Framework("SKLearn", "scikit-learn", "scikit-learn", "1.9",
                         companions=("numpy", "pandas", "scipy", "matplotlib", "pillow")),
    # Azure's azureml.train.dnn.Chainer. Chainer ended in 2019 (7.8.1, 2020): Python 3.5–3.8, NumPy 1.
    "Chainer": Framework("Chainer", "chainer", "chainer", "7.8", max_python=(3, 8)),
}


def framework(name: str) -> Framework:
    try:
        return FRAMEWORKS[name]
    except KeyError:
        raise ConfigError(f"unknown framework {name!r}; runyard knows {', '.join(FRAMEWORKS)}") from None


def check_version(version: str) -> str:
    """``"2.21"`` or ``"2.21.0"``: a release number (the build chooses the newest matching patch release)."""
    version = str(version).strip()
    if not re.fullmatch(r"\d+(\.\d+){0,2}", version):
        raise ConfigError(f"framework_version must look like '2.21' or '2.21.0', got {version!r}")
    return version


def pin(fw: Framework, version: str, use_gpu: bool, settings: IndexSettings, python: tuple[int, int],
        check_index: bool = True) -> tuple[list[str], list[str]]:
    """(requirements, extra uv options) for ``fw`` at ``version``; raises ConfigError, listing the versions that
    exist, when the configured indexes have no matching release."""
    package = fw.package(use_gpu)
    dist = package.split("[")[0]
    if not use_gpu and fw.cpu_local_label:
        wheels = sorted((v, p) for v, p in local_wheels(dist, settings)
                        if v.endswith(fw.cpu_local_label) and _matches(v, version) and wheel_fits(p, python))
        if wheels:  # a CPU build on local disk: no multi-GB CUDA download
            return [f"{package}=={wheels[-1][0]}", *companions(fw, version)], []
    if check_index:
        versions = available_versions(dist, settings)
        if versions is not None and not any(_matches(v, version) for v in versions):
            offer = f"offer {dist} {_families(versions)}" if versions else f"have no {dist} package"
            raise ConfigError(f"{fw.name} framework_version {version!r} does not exist: the package indexes {offer}")
    requirement = f"{package}=={version}.*" if version.count(".") < 2 else f"{package}=={version}"
    extra = ["--extra-index-url", fw.cpu_index] if (not use_gpu and fw.cpu_index) else []
    return [requirement, *companions(fw, version)], extra


def companions(fw: Framework, version: str) -> list[str]:
    """The packages that come with ``fw`` (TensorBoard in TensorFlow's own release series)."""
    series = ".".join(version.split(".")[:2])
    return [f"tensorboard=={series}.*" if name == "tensorboard" and fw.name == "TensorFlow" else name
            for name in fw.companions]


def _matches(available: str, wanted: str) -> bool:
    public = available.split("+")[0]
    return public == wanted or public.startswith(wanted + ".")


def release_series(versions: list[str]) -> list[str]:
    """The release series (major.minor) among final releases, oldest first: ['2.20', '2.21']."""
    seen: list[str] = []
    for v in versions:
        if re.fullmatch(r"\d+\.\d+(\.\d+)*(\+\w+)?", v):
            family = ".".join(v.split("+")[0].split(".")[:2])
            if family not in seen:
                seen.append(family)
    return seen


def series_key(series: str) -> tuple[int, int]:
    parts = series.split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def nearest(wanted: str | None, series: list[str]) -> str | None:
    """The release series (``"2.12"``) of ``series`` nearest to ``wanted``: itself when offered; for ``"2.x"`` the
    newest 2.*; else the newest series below it, or the oldest when all are above (None: nothing offered)."""
    if not series:
        return None
    ordered = sorted(set(series), key=series_key)
    if wanted is None:
        return ordered[-1]
    if wanted.endswith(".x"):
        major = int(wanted[:-2])
        same = [s for s in ordered if series_key(s)[0] == major]
        if same:
            return same[-1]
        below = [s for s in ordered if series_key(s)[0] < major]
        return below[-1] if below else ordered[0]
    key = series_key(wanted)
    below = [s for s in ordered if series_key(s) <= key]
    return below[-1] if below else ordered[0]


@functools.lru_cache(maxsize=None)
def offered_series(framework_name: str) -> list[str] | None:
    """Release series of the framework with wheels for this Python (CPU builds; local CPU wheels first)."""
    from runyard.config.package_index import available_versions, local_wheels, pip_settings, wheel_fits

    fw = framework(framework_name)
    settings = pip_settings()
    python = sys.version_info[:2]
    if fw.cpu_local_label:
        local = [v for v, p in local_wheels(fw.cpu_package, settings)
                 if v.endswith(fw.cpu_local_label) and wheel_fits(p, python)]
        if local:  # a CPU build on local disk: nothing multi-GB to fetch
            return release_series(sorted(local, key=Version))
    versions = available_versions(fw.cpu_package, settings, python=python)
    if versions is None:
        return None
    return release_series([v for v in versions if re.fullmatch(r"\d+(\.\d+)*(\+\w+)?", v)])


def resolve_version(name: str, version: str) -> tuple[str, str | None]:
    """(the version to build, a notice or None). A version older than every release the package indexes offer for
    this Python (an Azure-era pin such as TensorFlow 1.13) becomes the oldest offered release series, with a notice;
    any other version stays as asked (the build checks that it exists)."""
    import os

    from runyard import env_vars

    if os.environ.get(env_vars.ENV_INDEX_CHECK) == "0":
        return version, None
    offered = offered_series(name)
    if not offered or series_key(version) >= series_key(offered[0]):
        return version, None
    chosen = nearest(version, offered) or version
    python = "%d.%d" % sys.version_info[:2]
    return chosen, (f"{name} framework_version {version!r} has no release for Python {python} in the package indexes; "
                    f"using {chosen}, the nearest one")


def _families(versions: list[str]) -> str:
    """'2.16, 2.17, … 2.21' — the newest series, for an error message."""
    seen = release_series(versions)
    if not seen:
        return "no final releases"
    return ", ".join(seen[-12:]) + (f" (and {len(seen) - 12} older)" if len(seen) > 12 else "")


__all__ = ["FRAMEWORKS", "Framework", "check_version", "framework", "nearest", "offered_series", "pin",
           "release_series", "resolve_version", "series_key"]
