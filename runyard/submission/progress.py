"""Showing an environment build while it happens: its log lines, and a bar over its ``[step/steps]`` lines."""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TextIO

_STEP = re.compile(r"^\[(\d+)/(\d+)\] (.*)")


def show_build(chunks: Iterable[str], out: TextIO | None = None) -> bool:
    """Print a build log as it arrives (dimmed) under a progress bar; returns whether there was anything to show."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = None
    task = None
    pending = ""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split("\n")
        for line in lines:
            if progress is None:
                console = Console(file=out or sys.stdout)
                progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                    TimeElapsedColumn(), console=console, transient=False)
                progress.start()
                task = progress.add_task("building the environment", total=None)
            step = _STEP.match(line)
            if step:
                progress.update(task, completed=int(step[1]) - 1, total=int(step[2]), description=step[3][:60])
            elif line.startswith("environment ") and " ready in " in line:
                total = progress.tasks[0].total or 1
                progress.update(task, completed=total, description="environment ready")
            progress.console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
    if progress is not None:
        progress.stop()
    return progress is not None


__all__ = ["show_build"]
