"""Azure ML's curated environments, approximated by environments runyard can build here.

``Environment.get(ws, "AzureML-TensorFlow-2.3-CPU")`` (when the workspace has no registered environment of that name)
answers a built environment with the same framework at the **nearest version the package indexes offer for this
machine's Python** — Azure's images pinned Pythons (3.6–3.8) and CUDA builds that current indexes no longer serve —
and says so in a warning and in the environment's description. The table:

| Azure name family | runyard environment |
|---|---|
| ``AzureML-TensorFlow-<v>-CPU/GPU``, ``AzureML-tensorflow-<v>-ubuntu…``, ``…-2.x-…`` | TensorFlow ``<v>`` (``tensorflow-cpu``), numpy, pandas |
| ``AzureML-PyTorch-<v>-…``, ``AzureML-pytorch-<v>-ubuntu…``, ``AzureML-ACPT-pytorch-<v>…`` | PyTorch ``<v>`` (a CPU wheel on local disk when one lies there), numpy |
| ``AzureML-sklearn-<v>-…``, ``azureml-sklearn-<v>``, ``AzureML-Scikit-learn-<v>`` | scikit-learn ``<v>``, pandas |
| ``AzureML-lightgbm-<v>-…`` | lightgbm, scikit-learn, pandas |
| ``AzureML-Minimal``, ``AzureML-minimal-ubuntu…`` | nothing but runyard's client |
| ``AzureML-Tutorial`` | numpy, pandas, scikit-learn, matplotlib |

``<v>`` may be ``1.x``/``2.x`` (the newest of that major version). The GPU variants map to the same CPU build on a
machine without a GPU; a run of them with ``use_gpu=True`` gets the framework's GPU package. Versions released before
NumPy 2 get ``numpy<2``. Offline (no index readable), the framework's default version is used.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from runyard.errors import ConfigError


@dataclass(frozen=True)
class Family:
    pattern: re.Pattern[str]
    framework: str | None  # runyard's framework pin (train.frameworks), or None
    packages: tuple[str, ...]
    numpy2_from: str | None = None  # the framework's first release series built for NumPy 2


_V = r"(?P<v>\d+(?:\.\d+)?|\d+\.x)"
FAMILIES: tuple[Family, ...] = (
    Family(re.compile(rf"^azureml-(?:tensorflow|tf)-{_V}(?:-|$)", re.I), "TensorFlow", ("numpy", "pandas"), "2.18"),
    Family(re.compile(rf"^azureml-(?:acpt-)?pytorch-{_V}(?:-|$)", re.I), "PyTorch", ("numpy",), "2.3"),
    Family(re.compile(rf"^azureml-(?:sklearn|scikit-learn)-{_V}(?:\.\d+)?(?:-|$)", re.I), "SKLearn", ("pandas",), "1.4"),
    Family(re.compile(rf"^azureml-lightgbm-{_V}(?:-|$)", re.I), None, ("lightgbm", "scikit-learn", "pandas")),
    Family(re.compile(r"^azureml-minimal(?:-|$)", re.I), None, ()),
    Family(re.compile(r"^azureml-tutorial$", re.I), None, ("numpy", "pandas", "scikit-learn", "matplotlib")),
)
# Names Environment.list shows (any name of a family above is accepted by Environment.get).
LISTED = ("AzureML-Minimal", "AzureML-Tutorial", "AzureML-TensorFlow-2.x-CPU", "AzureML-TensorFlow-2.x-GPU",
          "AzureML-PyTorch-2.x-CPU", "AzureML-PyTorch-1.x-GPU", "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
          "azureml-sklearn-1.5", "AzureML-lightgbm-3.3-ubuntu20.04-py38-cpu")


def family_of(name: str) -> tuple[Family, str | None] | None:
    """The family of an Azure curated name and the version it names (None: no version in the name)."""
    for family in FAMILIES:
        m = family.pattern.match(name.strip())
        if m:
            return family, m.groupdict().get("v")
    return None


def is_curated(name: str) -> bool:
    return family_of(name) is not None


@dataclass(frozen=True)
class Approximation:
    """What stands for a curated environment here: a framework pin, pip packages, and a description saying so."""

    framework: dict[str, str] | None
    pip_packages: tuple[str, ...]
    description: str


def approximation(name: str) -> Approximation:
    """runyard's approximation of Azure's curated environment ``name`` (see the module's table)."""
    from runyard.train.frameworks import framework, nearest, offered_series, series_key

    found = family_of(name)
    if found is None:
        raise ConfigError(f"{name!r} is not one of Azure ML's curated environments runyard maps")
    family, wanted = found
    python = "%d.%d" % sys.version_info[:2]
    pin, packages = None, []
    if family.framework:
        offered = offered_series(family.framework)
        version = nearest(wanted, offered or []) or framework(family.framework).default_version
        pin = {"name": family.framework, "version": version}
        if wanted == version:
            how = "the version it names"
        elif offered:
            how = f"the release nearest to {wanted or 'the newest'} that the package indexes offer"
        else:
            how = "runyard's default (no package index could be read)"
        note = f"{name}: Azure ML's curated environment, approximated by {family.framework} {version} ({how})"
        if family.numpy2_from and series_key(version) < series_key(family.numpy2_from):
            packages.append("numpy<2")
    else:
        note = f"{name}: Azure ML's curated environment, approximated by " + (
            ", ".join(family.packages) if family.packages else "an environment with runyard's client only")
    packages += [p for p in family.packages if not any(q.split("<")[0] == p for q in packages)]
    return Approximation(pin, tuple(packages), note + f" on Python {python}; Azure's image (OS, CUDA, its Python) "
                                                      "is not reproduced")


__all__ = ["FAMILIES", "LISTED", "Approximation", "Family", "approximation", "family_of", "is_curated"]
