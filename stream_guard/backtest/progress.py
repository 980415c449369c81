"""A progress bar over input files for long commands (replay, backtest)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from stream_guard.ingest.files import count_lines

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(
    inputs: list[Path], label: str, quiet: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """Yields an `advance(n)` callback (None when quiet) for a bar sized by input lines."""
    if quiet:
        yield None
        return
    total = count_lines(inputs)
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
