"""Paths given to a run as inputs, as plain data: ``DataPath`` (Azure's ``azureml.data.datapath``) — a folder of a
datastore, or the files a run stored (``run._get_outputs_datapath()``) — and the naming rules every run input
shares (``input_name``, ``data_env_var``, ``clean_path``).

    DataPath(datastore, "checkpoints/run-7")             # a datastore's folder (mounted by default, as Azure's)
    run._get_outputs_datapath()                           # what a finished run uploaded under outputs/
    TensorFlow(..., resume_from=path)                     # an input of the run and --resume-from <its local path>
    path.create_data_reference("ckpt", DataPathComputeBinding(mode="download"))   # an input, named, as Azure's

A run's files live in the workspace's artifact store, not in a datastore, so they are an input of their own kind
(``{"run": id, "path": "outputs"}``): checked at submission (the run exists and stored files there) and downloaded
into the new run's ``inputs/<name>`` when it starts (``runyard.data.inputs``).
"""
from __future__ import annotations

import os
import re
from typing import Any

from runyard.errors import ValidationError

RESUME_NAME = "resume_from"  # the input a resume_from path becomes
RESUME_FLAG = "--resume-from"  # what Azure appends to the script's arguments


def clean_path(path: Any, what: str = "path") -> str:
    """A path inside a datastore as a clean posix key ("" for the root); refuses one that escapes it."""
    if path is None:
        return ""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise ValidationError(f"{what} must be a string such as 'mnist/train', got {type(path).__name__}")
    text = path.replace("\\", "/").strip()
    if text.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", text) or "\0" in text:
        raise ValidationError(f"{what} {path!r} must be relative to the datastore's root (no leading '/', '~' or drive)")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"{what} {path!r} escapes the datastore ('..' is not allowed)")
    return "/".join(parts)


def input_name(name: str) -> str:
    """A run input's name: letters, digits and '_' (it becomes part of an environment variable's name)."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"an input name must be a non-empty string, got {name!r}")
    clean = re.sub(r"\W", "_", name.strip())
    return ("_" + clean if clean[0].isdigit() else clean)[:128]


def data_env_var(name: str) -> str:
    return f"RUNYARD_DATA_{name}"


class DataPathComputeBinding:
    """How a DataPath reaches the compute: ``mount`` or ``download`` (into ``path_on_compute``)."""

    def __init__(self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False) -> None:
        if mode not in ("mount", "download"):
            raise ValidationError(f"DataPathComputeBinding mode must be 'mount' or 'download', got {mode!r}")
        self.mode, self.path_on_compute, self.overwrite = mode, path_on_compute, overwrite


class DataPath:
    """A folder (or file) of a datastore, or of a run's stored files; in a run's ``arguments`` or ``inputs`` it is
    an input whose local path the script gets (``${RUNYARD_DATA_<name>}``, expanded when the run starts)."""

    def __init__(self, datastore: Any = None, path_on_datastore: str | None = None, name: str | None = None) -> None:
        if datastore is None or not isinstance(getattr(datastore, "name", None), str):
            raise ValidationError("DataPath needs a datastore, e.g. DataPath(ws.get_default_datastore(), 'checkpoints')")
        self.datastore = datastore
        self.path_on_datastore = clean_path(path_on_datastore, "path_on_datastore")
        self.name = name
        self.run_id: str | None = None
        self.binding = DataPathComputeBinding()

    @classmethod
    def _of_run(cls, run_id: str, path: str = "outputs") -> "DataPath":
        """The files run ``run_id`` stored under ``path``: downloaded, since they are a copy to start from."""
        self = cls.__new__(cls)
        self.datastore, self.path_on_datastore, self.name, self.run_id = None, clean_path(path), None, run_id
        self.binding = DataPathComputeBinding("download")
        return self

    def create_data_reference(self, data_reference_name: str | None = None,
                              datapath_compute_binding: DataPathComputeBinding | None = None) -> "DataPath":
        """This path as a named input with its binding (Azure's call; the result goes in arguments or inputs)."""
        ref = self._copy(data_reference_name or self.name)
        if datapath_compute_binding is not None:
            if self.run_id is not None and datapath_compute_binding.mode == "mount":
                raise ValidationError("a run's stored files are downloaded, not mounted: use "
                                      "DataPathComputeBinding(mode='download')")
            ref.binding = datapath_compute_binding
        return ref

    def as_named_input(self, name: str) -> "DataPath":
        return self._copy(name)

    def _copy(self, name: str | None) -> "DataPath":
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__, name=name)
        return new

    @property
    def input_name(self) -> str:
        where = f"run_{self.run_id}" if self.run_id else self.datastore.name
        return input_name(self.name or "_".join(p for p in (where, self.path_on_datastore) if p))

    def to_input(self) -> dict[str, Any]:
        """What a run records and resolves when it starts (names only, never credentials)."""
        source = {"run": self.run_id} if self.run_id else {"datastore": self.datastore.name}
        return {"name": self.input_name, "mode": self.binding.mode, **source, "path": self.path_on_datastore,
                "path_on_compute": self.binding.path_on_compute}

    def __str__(self) -> str:
        return "${" + data_env_var(self.input_name) + "}"

    def __repr__(self) -> str:
        where = f"run={self.run_id!r}" if self.run_id else f"datastore={self.datastore.name!r}"
        return f"DataPath({where}, path={self.path_on_datastore!r}, mode={self.binding.mode!r})"


def resume_arguments(resume_from: Any) -> list[Any]:
    """``resume_from`` as the arguments Azure appends: ``--resume-from <its local path>`` (the path an input of the
    run, named ``resume_from``)."""
    if not hasattr(resume_from, "to_input"):
        raise ValidationError("resume_from must be a DataPath (a datastore folder, or run._get_outputs_datapath() of "
                              f"an earlier run), got {type(resume_from).__name__}")
    named = getattr(resume_from, "as_named_input", None)
    return [RESUME_FLAG, named(RESUME_NAME) if named else resume_from]


__all__ = ["DataPath", "DataPathComputeBinding", "clean_path", "data_env_var", "input_name", "resume_arguments"]
