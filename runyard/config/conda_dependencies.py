"""``CondaDependencies``: the packages of an environment, in Azure ML's conda-file shape.

    cd = CondaDependencies.create(pip_packages=["tensorflow-cpu==2.21.*"], conda_packages=["scikit-learn"],
                                  python_version="3.11")
    cd.add_pip_package("matplotlib"); cd.add_channel("conda-forge")
    env.python.conda_dependencies = cd           # or CondaDependencies("env.yml")

It is pure data: runyard builds the environment with uv (conda packages go through conda when one is installed,
else through pip under their PyPI names — see ``runyard.environments``).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError, NotFound, ValidationError

_PYTHON = re.compile(r"^python\s*(?:=|==)?\s*([0-9][0-9.*]*)?$", re.IGNORECASE)


class CondaDependencies:
    """Channels, conda packages and pip packages of an environment (a conda ``environment.yml``)."""

    def __init__(self, conda_dependencies_file_path: str | os.PathLike | None = None, _underlying: dict | None = None):
        self.channels: list[str] = []
        self.conda_packages: list[str] = []
        self.pip_packages: list[str] = []
        self.pip_options: list[str] = []
        self.python_version: str | None = None
        self.name: str | None = None
        if conda_dependencies_file_path is not None:
            path = Path(conda_dependencies_file_path).expanduser()
            if not path.is_file():
                raise NotFound(f"conda specification {os.fspath(conda_dependencies_file_path)!r} not found")
            self._load(_read_yaml(path), str(path))
        elif _underlying is not None:
            self._load(_underlying, "conda specification")

    @classmethod
    def create(
        cls,
        pip_packages: Iterable[str] | None = None,
        conda_packages: Iterable[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
        pip_indexurl: str | None = None,
    ) -> "CondaDependencies":
        """Azure ML's factory. ``pin_sdk_version`` is accepted: runyard always puts its own client in a built env."""
        cd = cls()
        for p in conda_packages or ():
            cd.add_conda_package(p)
        for p in pip_packages or ():
            cd.add_pip_package(p)
        if python_version is not None:
            cd.set_python_version(python_version)
        if pip_indexurl:
            cd.set_pip_index_url(pip_indexurl)
        return cd

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "CondaDependencies":
        return cls(_underlying=spec)

    # -- editing (Azure ML's methods) ---------------------------------------------------------------------
    def add_pip_package(self, pip_package: str) -> None:
        pip_package = _package(pip_package, "pip package")
        if pip_package not in self.pip_packages:
            self.pip_packages.append(pip_package)

    def add_conda_package(self, conda_package: str) -> None:
        conda_package = _package(conda_package, "conda package")
        match = _PYTHON.match(conda_package)
        if match:  # "python=3.11" is how a conda file chooses the interpreter
            if match.group(1):
                self.set_python_version(match.group(1))
            return
        if conda_package not in self.conda_packages:
            self.conda_packages.append(conda_package)

    def add_channel(self, channel: str) -> None:
        channel = _package(channel, "conda channel")
        if channel not in self.channels:
            self.channels.append(channel)

    def remove_pip_package(self, pip_package: str) -> None:
        name = _name(pip_package)
        self.pip_packages = [p for p in self.pip_packages if _name(p) != name]

    def remove_conda_package(self, conda_package: str) -> None:
        name = _name(conda_package)
        self.conda_packages = [p for p in self.conda_packages if _name(p) != name]

    def set_pip_option(self, pip_option: str) -> None:
        pip_option = _package(pip_option, "pip option")
        if pip_option not in self.pip_options:
            self.pip_options.append(pip_option)

    def set_pip_index_url(self, index_url: str) -> None:
        self.set_pip_option(f"--index-url {index_url}")

    def set_python_version(self, version: str) -> None:
        version = str(version).strip()
        if not re.fullmatch(r"3(\.\d+){1,2}(\.\*)?", version):
            raise ValidationError(f"python version must look like '3.11' or '3.11.4', got {version!r}")
        self.python_version = version.removesuffix(".*")

    def get_python_version(self) -> str | None:
        return self.python_version

    # -- forms ------------------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """The conda-file form: ``{"name", "channels", "dependencies": [..., "python=X", {"pip": [...]}]}``."""
        deps: list[Any] = ([f"python={self.python_version}"] if self.python_version else []) + list(self.conda_packages)
        pip = list(self.pip_options) + list(self.pip_packages)
        if pip:
            deps.append({"pip": pip})
        out: dict[str, Any] = {"name": self.name or "runyard-env", "channels": list(self.channels), "dependencies": deps}
        return out

    def serialize_to_string(self) -> str:
        import yaml

        return yaml.safe_dump(self.as_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> str:
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")
        return os.fspath(path)

    def save_to_file(self, base_directory: str | os.PathLike, conda_file_path: str | None = None) -> str:
        """Azure ML's form of :meth:`save`: ``base_directory/conda_file_path`` (default ``conda_dependencies.yml``)."""
        folder = Path(base_directory).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        return self.save(folder / (conda_file_path or "conda_dependencies.yml"))

    def add_tensorflow_conda_package(self, core_type: str = "cpu", version: str | None = None) -> None:
        """TensorFlow for ``core_type`` "cpu" or "gpu" (at ``version``). Added as a pip package — the CPU build is
        ``tensorflow-cpu``, the GPU one ``tensorflow[and-cuda]`` — since pip's TensorFlow is what runyard builds."""
        if core_type not in ("cpu", "gpu"):
            raise ValidationError(f"core_type must be 'cpu' or 'gpu', got {core_type!r}")
        package = "tensorflow-cpu" if core_type == "cpu" else "tensorflow[and-cuda]"
        self.add_pip_package(f"{package}=={version}.*" if version and version.count(".") < 2 else
                             f"{package}=={version}" if version else package)

    def add_tensorflow_pip_package(self, core_type: str = "cpu", version: str | None = None) -> None:
        self.add_tensorflow_conda_package(core_type, version)

    def _load(self, spec: Any, where: str) -> None:
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping with 'dependencies', got {type(spec).__name__}")
        unknown = set(spec) - {"name", "channels", "dependencies", "prefix", "variables"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} — a conda file has name, channels, dependencies")
        self.name = spec.get("name")
        for channel in spec.get("channels") or []:
            self.add_channel(channel)
        for dep in spec.get("dependencies") or []:
            if isinstance(dep, dict):
                if set(dep) != {"pip"} or not isinstance(dep["pip"], list):
                    raise ConfigError(f"{where}: a mapping in dependencies must be {{'pip': [packages]}}, got {dep!r}")
                for line in dep["pip"]:
                    if isinstance(line, str) and line.strip().startswith("-"):
                        self.set_pip_option(line.strip())
                    else:
                        self.add_pip_package(line)
            else:
                self.add_conda_package(dep)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CondaDependencies) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return (f"CondaDependencies(python={self.python_version!r}, conda_packages={self.conda_packages!r}, "
                f"pip_packages={self.pip_packages!r})")


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def _package(value: Any, what: str) -> str:
    if isinstance(value, (int, float)) and what == "conda package":
        value = str(value)
    if not isinstance(value, str) or not value.strip() or "\n" in value or "\0" in value:
        raise ValidationError(f"{what} must be a non-empty one-line string, got {value!r}")
    return value.strip()


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


__all__ = ["CondaDependencies"]
