"""Checks on what users pass in: names, metric values, artifact paths. Errors say what to do instead."""
from __future__ import annotations

import math
import numbers
import posixpath
import re
from typing import Any

from runyard.errors import ValidationError

MAX_NAME = 255
MAX_STRING_VALUE = 8192  # metric strings, tags, properties, params
MAX_ARTIFACT_PATH = 1024
_EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"experiment name must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME:
        raise ValidationError(f"experiment name is {len(name)} characters long; the limit is {MAX_NAME}")
    if not _EXPERIMENT_NAME.match(name):
        raise ValidationError(
            f"invalid experiment name {name!r}: use letters, digits, '_', '-' and '.', starting with a letter or "
            f"digit (no '/', spaces or other characters), e.g. {re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-._') or 'my-experiment'!r}"
        )
    return name


def run_id(value: Any) -> str:
    if not isinstance(value, str) or not _RUN_ID.match(value) or len(value) > MAX_NAME:
        raise ValidationError(f"invalid run id {value!r}: run ids are letters, digits, '_', '-' and '.'")
    return value


def key(value: Any, what: str = "name") -> str:
    """Metric names, tag and property keys: any printable text (spaces and '@' welcome), 1–255 characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise ValidationError(f"{what} {value[:40]!r}… is {len(value)} characters long; the limit is {MAX_NAME}")
    if _CONTROL.search(value):
        raise ValidationError(f"{what} {value!r} contains control characters")
    return value


def text(value: Any, what: str) -> str:
    """Tag/property/param values: stored as strings (numbers are converted), at most 8192 characters."""
    if value is None:
        return ""
    if not isinstance(value, (str, numbers.Number)):
        raise ValidationError(f"{what} must be a string or a number, got {type(value).__name__}")
    value = str(value)
    if len(value) > MAX_STRING_VALUE:
        raise ValidationError(f"{what} is {len(value)} characters long; the limit is {MAX_STRING_VALUE}")
    return value


def metric_value(name: str, value: Any) -> int | float | bool | str:
    """Numbers (Python or numpy, NaN/inf included) and strings; anything else is refused with the reason."""
    cls = type(value)
    if cls is float or cls is int or cls is str and len(value) <= MAX_STRING_VALUE:
        return value  # the hot path: one type check per call
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        raise ValidationError(
            f"metric {name!r}: string value is {len(value)} characters long; the limit is {MAX_STRING_VALUE} — "
            "upload long text as a file with run.upload_file()"
        )
    item = getattr(value, "item", None)  # numpy bool/0-d arrays, torch and tf scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return metric_value(name, item())
    raise ValidationError(
        f"metric {name!r}: value {value!r} of type {cls.__name__} is not a number or a string; "
        "use run.log_list() for sequences, run.log_row()/log_table() for tables"
    )


def metric_list(name: str, values: Any) -> list:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValidationError(f"metric {name!r}: log_list needs a list of numbers or strings, got {type(values).__name__}")
    return [metric_value(name, v) for v in values]


def table(name: str, columns: Any) -> dict[str, list]:
    if not isinstance(columns, dict) or not columns:
        raise ValidationError(f"table {name!r}: expected a non-empty dict of column name → list of values")
    out = {}
    for col, values in columns.items():
        key(col, "column name")
        out[col] = metric_list(f"{name}.{col}", values) if not _scalar(values) else [metric_value(name, values)]
    lengths = {col: len(values) for col, values in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValidationError(f"table {name!r}: every column needs the same number of values, got "
                              + ", ".join(f"{col}: {n}" for col, n in lengths.items()))
    return out


_STEP_RANGE = (-(2**63), 2**63 - 1)


def step(name: str, value: Any) -> int:
    """A metric's ``step=``: an integer (Python or numpy; a float only when whole) that fits 64 bits."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"metric {name!r}: step must be an integer, got {value!r} ({type(value).__name__})")
    if not isinstance(value, numbers.Integral):
        if not math.isfinite(value) or value != int(value):
            raise ValidationError(f"metric {name!r}: step must be an integer, got {value!r}")
    value = int(value)
    if not _STEP_RANGE[0] <= value <= _STEP_RANGE[1]:
        raise ValidationError(f"metric {name!r}: step {value} does not fit in 64 bits")
    return value


def row(name: str, values: dict[str, Any]) -> dict[str, Any]:
    if not values:
        raise ValidationError(f"log_row {name!r}: give the row's columns as keyword arguments, e.g. log_row({name!r}, epoch=1, acc=0.9)")
    return {key(col, "column name"): metric_value(f"{name}.{col}", v) for col, v in values.items()}


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, numbers.Number)) or not hasattr(value, "__iter__")


def artifact_path(name: Any) -> str:
    """A relative POSIX path inside a run's folder: no absolute paths, no '..', no empty parts."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"artifact name must be a non-empty relative path, got {name!r}")
    if "\x00" in name or len(name) > MAX_ARTIFACT_PATH:
        raise ValidationError(f"invalid artifact name {name[:60]!r}: NUL characters or more than {MAX_ARTIFACT_PATH} characters")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or "://" in posix:
        raise ValidationError(f"artifact name {name!r} is absolute; use a path relative to the run, e.g. 'outputs/model.pkl'")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValidationError(f"artifact name {name!r} contains '..'; artifacts cannot be written outside the run's folder")
    if not parts:
        raise ValidationError(f"artifact name {name!r} names no file")
    return posixpath.join(*parts)
