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


def metric_row(record: MetricRecord) -> dict[str, Any]:
    value, value_str, vtype = encode(record.value)
    return {
        "run_id": record.run_id,
        "name": record.name,
        "step": record.step,
        "value": value,
        "value_str": value_str,
        "vtype": vtype,
        "kind": record.kind,
        "timestamp": record.timestamp,
    }


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collapse a batch of metric rows to one row per (run, name): the newest value and the count."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["run_id"], row["name"])
        seen = latest.get(key)
        if seen is None:
            latest[key] = dict(row, count=1)
            continue
        count = seen["count"] + 1
        if row["timestamp"] >= seen["timestamp"]:
            seen = latest[key] = dict(row)
        seen["count"] = count
    return list(latest.values())
