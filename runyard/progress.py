"""Rich progress bars for long work (uploads, downloads); silent when output is not a terminal."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

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
