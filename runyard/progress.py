"""Rich progress bars for long work (uploads, downloads, environment builds); silent when output is not a terminal."""
from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TextIO, TypeVar

T = TypeVar("T")


def track(
    items: Sequence[T], description: str, show: bool | None = None, total_bytes: Callable[[T], int] | None = None
) -> Iterator[T]:
    """Yield ``items``, advancing a bar by each item's size. ``show=None`` shows it on a terminal for >1 item."""
    if show is None:
        show = sys.stderr.isatty() and len(items) > 1
    if not show:
        yield from items
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    sizes = [total_bytes(i) if total_bytes else 1 for i in items]
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()] if total_bytes else []
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(f"{description} {len(items)} files", total=sum(sizes))
        for item, size in zip(items, sizes, strict=True):
            yield item
            progress.advance(task, size)


class ByteBar:
    """A bar advanced by bytes from any thread (transfers run in a pool); a no-op when not shown."""

    def __init__(self, description: str, total: int, show: bool | None = None) -> None:
        self.show = bool(show if show is not None else total) and _interactive()
        self.description, self.total = description, total
        self._progress = None
        self._task = None

    def __enter__(self) -> "ByteBar":
        if self.show:
            from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                       TransferSpeedColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                      TransferSpeedColumn(), TimeRemainingColumn(), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _interactive() -> bool:
    """A terminal or a notebook: where a live bar is readable (CI logs get the summary line instead)."""
    if sys.stderr.isatty():
        return True
    try:
        from rich.console import Console

        return Console(stderr=True).is_jupyter
    except Exception:  # noqa: BLE001
        return False


_STEP = re.compile(r"^\[(\d+)/(\d+)\] (.*)")


def show_build(chunks: Iterable[str], out: TextIO | None = None, title: str = "building the environment") -> bool:
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
                progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[steps]}"),
                                    TimeElapsedColumn(), console=console, transient=False)
                progress.start()
                task = progress.add_task(title, total=None, steps="")  # steps shown once the log numbers them
            step = _STEP.match(line)
            if step:
                progress.update(task, completed=int(step[1]) - 1, total=int(step[2]), description=step[3][:60],
                                steps=f"{int(step[1]) - 1}/{step[2]}")
            elif line.startswith("environment ") and " ready in " in line:
                total = progress.tasks[0].total or 1
                progress.update(task, completed=total, description="environment ready", steps=f"{total}/{total}")
            progress.console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
    if progress is not None:
        progress.stop()
    return progress is not None


__all__ = ["show_build"]
