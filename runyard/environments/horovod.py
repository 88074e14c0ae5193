"""Horovod, built into an environment that asks for it, for the frameworks that environment holds.

Azure ML's framework images shipped Horovod, so its scripts (``hvd.init()``, ``DistributedOptimizer``,
``broadcast_parameters``, the Keras callbacks) ran unchanged. Here an environment asks for it by naming ``horovod`` (a
pip or conda package, with any extras or version pin), or by being a TensorFlow/PyTorch framework environment of an
MPI job (``distributed_backend='mpi'``, ``MpiConfiguration``) as Azure's images were. ``plan`` takes ``horovod`` out of
what uv installs and puts the recipe in the request (part of the key); the builder then calls ``build`` after the
frameworks are installed.

Horovod 0.28.1 (the last release, 2023) against today's frameworks (torch 2.13, tensorflow-cpu 2.21) takes:

- C++17: its CMake files force C++14; torch >= 2 and TF >= 2.16 headers need C++17 (patched here);
- no build isolation, after the frameworks are installed (an isolated build cannot import them: "Could NOT find
  Tensorflow" means that, not the version);
- TensorFlow's headers include highwayhash and farmhash, which its wheel does not ship (Debian's libhighwayhash-dev and
  libfarmhash-dev); Horovod's XLA ops (a GPU feature) use pre-2.16 header paths and are left out;
- Keras: TF >= 2.16 brings Keras 3, on which ``horovod.tensorflow.keras`` fails. The environment gets ``tf-keras`` (Keras
  2, TF's own release series) and starts with ``TF_USE_LEGACY_KERAS=1`` (a ``.pth`` file; set it to 0 to get Keras 3),
  so ``tf.keras`` is Keras 2 as in Azure's images, and Horovod's Keras backend is patched to ``tf.keras``'s.
  ``horovod.keras`` (standalone ``import keras``, which stays Keras 3) is not supported.

The compiled wheel is kept in a machine-wide cache (``cache_dir()``, like uv's), keyed by Python, framework versions and
this recipe: another environment with the same frameworks, in any workspace, installs it in seconds. Compiling takes
about 3 minutes on 2 cores.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard import env_vars
from runyard.config.package_index import canonical
from runyard.errors import ConfigError, EnvironmentBuildError

VERSION = "0.28.1"
RECIPE = 1  # bump when the build below changes: it is part of every Horovod environment's key
RUNTIME = ("cloudpickle", "psutil", "pyyaml", "packaging")  # Horovod's own requirements
BUILD_TOOLS = ("cmake", "setuptools", "wheel")
# Names whose presence in a spec means a framework Horovod builds against (besides a framework estimator's pin).
_TORCH = {"torch"}
_TENSORFLOW = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tf-nightly", "tf-nightly-cpu"}
_KERAS_PTH = "_runyard_legacy_keras.pth"

Runner = Callable[[list[str], "dict[str, str] | None"], None]  # runs one build command (argv, extra environment)


def split(requirements: list[str]) -> tuple[str | None, list[str]]:
    """(the ``horovod`` requirement or None, the other requirements)."""
    found, rest = None, []
    for requirement in requirements:
        name = re.split(r"[\[<>=!~;@ ]", requirement, maxsplit=1)[0]
        if canonical(name) == "horovod":
            found = requirement
        else:
            rest.append(requirement)
    return found, rest


def request(asked: str | None, requirements: list[str], framework: dict[str, Any] | None, mpi: bool,
            in_container: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """What goes in an environment's request for Horovod (None: it gets none) and what to tell the user.

    ``asked``: the spec's horovod requirement; ``mpi``: the job starts its processes with MPI. A framework environment
    of an MPI job gets Horovod unasked, as Azure's framework images had it. Raises ConfigError where it cannot be built."""
    framework_name = framework["name"] if framework else None
    unasked = mpi and framework_name in ("TensorFlow", "PyTorch") and not in_container  # an image brings its own
    if asked is None and not unasked:
        return None, []
    names = {canonical(re.split(r"[\[<>=!~;@ ]", r, maxsplit=1)[0]) for r in requirements}
    if framework_name not in ("TensorFlow", "PyTorch") and not names & (_TORCH | _TENSORFLOW):
        raise ConfigError(
            f"{asked} is built for the frameworks in the same environment, and this one has neither PyTorch nor "
            "TensorFlow: use a TensorFlow or PyTorch estimator (or a curated framework environment), or add "
            "tensorflow-cpu or torch to its packages")
    if in_container:
        raise ConfigError(
            f"{asked or 'horovod'} cannot be built inside a container image's environment: use an image that has "
            "Horovod with user_managed_dependencies=True, or run without docker (runyard builds it on this machine)")
    notes = []
    pinned = re.search(r"==\s*([\w.]+)", asked or "")
    if pinned and pinned.group(1) != VERSION:
        notes.append(f"{asked}: building Horovod {VERSION}, its last release (older releases do not build against "
                     "today's TensorFlow and PyTorch)")
    if asked is None:
        notes.append(f"{framework_name} with MPI: the environment gets Horovod {VERSION} and mpi4py, as Azure's "
                     "framework images had them (built once, then cached)")
    return {"version": VERSION, "recipe": RECIPE}, notes


def cache_dir() -> Path:
    """Where compiled Horovod wheels (and its source release) are kept: ``RUNYARD_HOROVOD_CACHE``, else
    ``~/.cache/runyard/horovod``."""
    return Path(os.environ.get(env_vars.HOROVOD_CACHE) or Path.home() / ".cache" / "runyard" / "horovod").expanduser()


def build(python: str, cache: Path, uv: str, uv_options: list[str], say: Callable[[str], None], run: Runner) -> None:
    """Build Horovod into the environment of ``python`` (its frameworks already installed), or install the wheel an
    earlier build of the same frameworks left in ``cache``."""
    frameworks = installed_frameworks(python)
    if not frameworks:
        raise EnvironmentBuildError("Horovod is built for PyTorch or TensorFlow, and the environment has neither: "
                                    "add tensorflow-cpu or torch to its packages")
    tensorflow = frameworks.get("tensorflow")
    extra = [*RUNTIME, *BUILD_TOOLS]
    say(f"Horovod {VERSION} for " + ", ".join(f"{k} {v}" for k, v in frameworks.items())
        + f": installing what it needs ({' '.join(extra)})")
    run([uv, "pip", "install", "--python", python, *extra, "--no-config", *uv_options], None)
    if tensorflow:  # Keras 2 of TensorFlow's own series (horovod.tensorflow.keras does not run on Keras 3). Without
        # its dependencies: it asks for `tensorflow`, which would install beside tensorflow-cpu over the same files.
        run([uv, "pip", "install", "--python", python, "--no-deps", f"tf-keras=={'.'.join(tensorflow.split('.')[:2])}.*",
             "--no-config", *uv_options], None)
    stamp = hashlib.sha256(json.dumps([VERSION, RECIPE, _python_tag(python), sorted(frameworks.items())])
                           .encode()).hexdigest()[:16]
    found = sorted(cache.glob(f"{stamp}/horovod-*.whl"))
    if found:
        say(f"Horovod {VERSION}: using the wheel built earlier for the same frameworks ({found[0]})")
        wheel = found[0]
    else:
        check_toolchain(bool(tensorflow))  # only compiling needs it: a cached wheel installs anywhere
        wheel = _compile(python, frameworks, cache, stamp, uv, say, run)
    run([uv, "pip", "install", "--python", python, "--no-deps", "--reinstall-package", "horovod", "--no-config",
         str(wheel)], None)
    if tensorflow:
        site = _site_packages(python)
        (site / _KERAS_PTH).write_text(
            "import os; os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # runyard: tf.keras is Keras 2 (tf-keras), "
            "which Horovod's Keras API needs\n", encoding="utf-8")
    checks = [f"import horovod.{m} as hvd; assert hvd.mpi_built(), 'horovod.{m} without MPI'"
              for m in ("torch" if "torch" in frameworks else None, "tensorflow" if tensorflow else None) if m]
    run([python, "-c", "; ".join(checks) + "; print('horovod imports, built with MPI')"],
        {"TF_CPP_MIN_LOG_LEVEL": "3"})


def installed_frameworks(python: str) -> dict[str, str]:
    """{"torch": "2.13.0+cpu", "tensorflow": "2.21.0"}: the frameworks ``python``'s environment holds."""
    probe = ("import importlib.metadata as m, json\nfound = {}\n"
             "for key, names in (('torch', ['torch']), ('tensorflow', ['tensorflow', 'tensorflow-cpu', "
             "'tensorflow-intel', 'tf-nightly', 'tf-nightly-cpu'])):\n"
             "    for name in names:\n"
             "        try:\n            found[key] = m.version(name); break\n"
             "        except m.PackageNotFoundError:\n            pass\n"
             "print(json.dumps(found))")
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise EnvironmentBuildError(f"cannot read the environment's packages with {python}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_toolchain(tensorflow: bool) -> None:
    """What compiling Horovod takes on this machine beyond the environment: Open MPI's compiler wrapper, a C++
    compiler, and for TensorFlow the two header-only libraries its headers include."""
    missing = []
    if not shutil.which("mpicxx"):
        missing.append("Open MPI's compiler (openmpi-bin libopenmpi-dev)")
    if not (shutil.which("g++") or shutil.which("c++")):
        missing.append("a C++ compiler (g++)")
    if tensorflow and not (Path("/usr/include/highwayhash/arch_specific.h").exists()
                           and Path("/usr/include/farmhash.h").exists()):
        missing.append("the headers TensorFlow's include (libhighwayhash-dev libfarmhash-dev)")
    if missing:
        packages = " ".join(re.findall(r"\(([^)]*)\)", " ".join(missing)))
        raise EnvironmentBuildError(
            f"building Horovod needs {', '.join(missing)}: apt-get install {packages} (as root), then submit again")


def _compile(python: str, frameworks: dict[str, str], wheels: Path, stamp: str, uv: str,
             say: Callable[[str], None], run: Runner) -> Path:
    with tempfile.TemporaryDirectory(prefix="runyard-horovod-") as work:
        source = _unpacked(wheels, Path(work), say, run)
        patch(source)
        flags = {"HOROVOD_WITH_MPI": "1", "HOROVOD_WITHOUT_MXNET": "1", "HOROVOD_WITHOUT_GLOO": "1",
                 "HOROVOD_CPU_OPERATIONS": "MPI",
                 "HOROVOD_WITH_PYTORCH" if "torch" in frameworks else "HOROVOD_WITHOUT_PYTORCH": "1",
                 "HOROVOD_WITH_TENSORFLOW" if "tensorflow" in frameworks else "HOROVOD_WITHOUT_TENSORFLOW": "1"}
        say(f"compiling Horovod {VERSION} with Open MPI ({' '.join(f'{k}={v}' for k, v in flags.items())}); "
            "a few minutes, once")
        out = Path(work) / "dist"
        bin_dir = str(Path(python).parent)  # the environment's cmake first
        run([uv, "build", "--wheel", "--no-build-isolation", "--python", python, "--out-dir", str(out), "--no-config",
             str(source)],
            {**flags, "MAKEFLAGS": f"-j{os.cpu_count() or 1}", "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")})
        built = sorted(out.glob("horovod-*.whl"))
        if not built:
            raise EnvironmentBuildError(f"building Horovod {VERSION} made no wheel in {out}")
        target = wheels / stamp
        target.mkdir(parents=True, exist_ok=True)
        final = target / built[0].name
        tmp = target / (built[0].name + f".{os.getpid()}.tmp")
        shutil.copyfile(built[0], tmp)
        os.replace(tmp, final)  # whole or not at all: a concurrent build of the same frameworks writes the same file
        return final


def _unpacked(wheels: Path, work: Path, say: Callable[[str], None], run: Runner) -> Path:
    """Horovod's source release, downloaded once into the cache (pip's indexes and configuration) and unpacked."""
    sources = wheels / "sources"
    sdist = sources / f"horovod-{VERSION}.tar.gz"
    if not sdist.is_file():
        sources.mkdir(parents=True, exist_ok=True)
        say(f"downloading Horovod {VERSION}'s source release")
        download = work / "download"
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "horovod", "--disable-pip-version-check",
             f"horovod=={VERSION}", "-d", str(download)], None)
        got = sorted(download.glob("horovod-*.tar.gz"))
        if not got:
            raise EnvironmentBuildError(f"pip downloaded no horovod-{VERSION}.tar.gz")
        os.replace(got[0], sdist)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    return work / f"horovod-{VERSION}"


# (file, pattern, replacement): each must match, so that a changed source fails here rather than in the compiler.
_PATCHES = (
    *((f, r"set\(CMAKE_CXX_STANDARD 14\)", "set(CMAKE_CXX_STANDARD 17)")
      for f in ("CMakeLists.txt", "horovod/torch/CMakeLists.txt")),
    ("horovod/tensorflow/CMakeLists.txt", r"[^\n]*xla_mpi_ops\.cc[^\n]*\n", ""),
    *((f, r"\n    from keras import backend as K\n", "\n    K = keras.backend  # tf.keras's (tf-keras under "
                                                        "TF_USE_LEGACY_KERAS=1), not Keras 3's\n")
      for f in ("horovod/tensorflow/keras/__init__.py", "horovod/tensorflow/keras/callbacks.py")),
)


def patch(source: Path) -> None:
    """Make Horovod's source build against today's frameworks (see the module's docstring)."""
    for name, pattern, replacement in _PATCHES:
        path = source / name
        text = path.read_text(encoding="utf-8")
        changed, count = re.subn(pattern, replacement, text)
        if count == 0:
            raise EnvironmentBuildError(f"Horovod {VERSION}'s {name} is not what runyard patches ({pattern!r})")
        path.write_text(changed, encoding="utf-8")


def _python_tag(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print(sys.implementation.cache_tag)"], capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip()


def _site_packages(python: str) -> Path:
    out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise EnvironmentBuildError(f"cannot find the site-packages of {python}: {out.stderr.strip()[-300:]}")
    return Path(out.stdout.strip())


__all__ = ["RECIPE", "VERSION", "build", "cache_dir", "check_toolchain", "installed_frameworks", "patch", "request", "split"]
