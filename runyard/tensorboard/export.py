"""Azure ML's ``azureml.tensorboard.export``: a run's metrics written as TensorBoard event files.

    from runyard.tensorboard.export import export_to_tensorboard
    export_to_tensorboard(run, "logdir")               # every numeric series, at its steps and times
    export_to_tensorboard(run.get_metrics(), "logdir") # Azure's other form: values by position

Written with TensorBoard's own event-file writer and protocol buffers (the ``tensorboard`` package; TensorFlow is not
needed). Values that are not numbers (tables, images, strings) are left out.
"""
from __future__ import annotations

import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runyard.errors import ConfigError


def _points(run_data: Any) -> dict[str, list[tuple[int, float, float]]]:
    """name → [(step, wall time, value)] of the numeric values."""
    def numeric(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    if isinstance(run_data, Mapping):  # run.get_metrics(): name → value or list of values
        now = time.time()
        out = {}
        for name, value in run_data.items():
            values = value if isinstance(value, list) else [value]
            kept = [(i, now, float(v)) for i, v in enumerate(values) if numeric(v)]
            if kept:
                out[name] = kept
        return out
    if not (hasattr(run_data, "id") and hasattr(run_data, "_ws")):
        raise ConfigError("export_to_tensorboard takes a run or the dict run.get_metrics() returns, got "
                          f"{type(run_data).__name__}")
    if callable(getattr(run_data, "flush", None)):
        run_data.flush()  # what this process logged and has not stored yet
    out: dict[str, list[tuple[int, float, float]]] = {}
    for record in run_data._ws.metadata.get_metric_history([run_data.id]):
        if record.kind in ("scalar", "list") and numeric(record.value):
            out.setdefault(record.name, []).append((record.step, record.timestamp, float(record.value)))
    return out


def export_to_tensorboard(run_data: Any, logsdir: str, logger: Any = None, name: str | None = None) -> list[str]:
    """Write ``run_data``'s numeric metrics as scalar summaries into an event file under ``logsdir`` (in a
    ``name`` subfolder when given); returns the metric names written."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    points = _points(run_data)
    folder = Path(logsdir) / name if name else Path(logsdir)
    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    try:
        for metric, series in sorted(points.items()):
            for step, wall, value in series:
                summary = Summary(value=[Summary.Value(tag=metric, simple_value=value)])
                writer.add_event(Event(wall_time=wall, step=step, summary=summary))
            if logger is not None:
                logger.info("exported %s (%d values) to %s", metric, len(series), folder)
    finally:
        writer.close()
    return sorted(points)


__all__ = ["export_to_tensorboard"]
