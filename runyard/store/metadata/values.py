"""How metric values are written to and read from SQL columns (shared by every SQL dialect)."""
from __future__ import annotations

import json
import math
from typing import Any

from runyard.store.metadata.entities import MetricRecord


def encode(value: Any) -> tuple[float | None, str | None, str]:
    """Return (value, value_str, vtype) for a validated metric value."""
    if isinstance(value, bool):
        return float(value), None, "b"
    if isinstance(value, int):
        return float(value), None, "i"
    if isinstance(value, float):
        return (None if math.isnan(value) else value), None, "f"
    if isinstance(value, str):
        return None, value, "s"
    return None, json.dumps(value, allow_nan=True, default=str), "j"


def decode(value: float | None, value_str: str | None, vtype: str) -> Any:
    if vtype == "f":
        return math.nan if value is None else float(value)
    if vtype == "i":
        return int(value)
    if vtype == "b":
        return bool(value)
    if vtype == "s":
        return value_str
    return json.loads(value_str)


# Column order of the bulk metric insert (the tuples below follow it).
METRIC_COLUMNS = ("run_id", "name", "step", "value", "value_str", "vtype", "kind", "timestamp")


def metric_tuple(record: MetricRecord) -> tuple:
    """One row for the bulk insert. The writer thread runs this per value: the float case comes first."""
    value = record.value
    if type(value) is float:
        number, text, vtype = (None if value != value else value), None, "f"
    else:
        number, text, vtype = encode(value)
    return (record.run_id, record.name, record.step, number, text, vtype, record.kind, record.timestamp)


def latest_rows(rows: list[tuple]) -> list[dict[str, Any]]:
    """Collapse a batch of metric rows to one row per (run, name): the newest value and the count."""
    latest: dict[tuple[str, str], list] = {}
    for row in rows:
        key = (row[0], row[1])
        seen = latest.get(key)
        if seen is None:
            latest[key] = [row, 1]
        else:
            if row[7] >= seen[0][7]:
                seen[0] = row
            seen[1] += 1
    return [dict(zip(METRIC_COLUMNS, row, strict=True), count=count) for row, count in latest.values()]
