"""`stream-guard simulate`: write a seeded record dump and its incident labels.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_cli(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["simulate", "--days", "7", "--seed", "3", "--out", "sim",
...                           "--start", "2026-03-09T00:00:00Z"])
>>> args.days, args.scale, args.start.isoformat(), args.scenario, args.func is run
(7, 1.0, '2026-03-09T00:00:00+00:00', 'default', True)
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_guard.clock import SystemClock
from stream_guard.simulate.scenarios import SCENARIOS
from stream_guard.simulate.simulation import DEFAULT_START
from stream_guard.simulate.writer import SimulationSummary, write_simulation

__all__ = ["add_cli", "main", "run"]


def _start(text: str) -> datetime:
    """An ISO-8601 instant with a zone (a trailing Z is fine)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no zone; add one (Z for UTC)")
    return value


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register `simulate`; the parsed namespace's `func(args)` runs it and returns an exit code."""
    p = subparsers.add_parser("simulate", help="synthetic traffic with labelled incidents")
    p.add_argument("--days", type=int, required=True, help="days of traffic")
    p.add_argument("--seed", type=int, required=True, help="random seed: same seed, same bytes")
    p.add_argument("--out", type=Path, required=True, help="directory for the two files")
    p.add_argument("--scale", type=float, default=1.0, help="volumes x (1: ~110k orders/day)")
    p.add_argument("--start", type=_start, default=DEFAULT_START, help="ISO time with zone")
    p.add_argument(
        "--invalid-fraction", type=float, default=0.0005, help="invalid records per valid one"
    )
    p.add_argument(
        "--scenario", choices=list(SCENARIOS), default="default",
        help="incidents and traffic shape; all but default are opt-in (simulate/scenarios.py)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the simulation with a progress bar, then print what was written."""
    console, clock = Console(), SystemClock()
    began = clock.monotonic()
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=args.quiet) as bar:
        task = bar.add_task("simulate", total=None)
        summary = write_simulation(
            args.out,
            days=args.days,
            seed=args.seed,
            start=args.start,
            scale=args.scale,
            invalid_fraction=args.invalid_fraction,
            scenario=args.scenario,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(_summary_table(summary, clock.monotonic() - began))
    return 0


def _summary_table(summary: SimulationSummary, seconds: float) -> Table:
    table = Table("what", "count", title=f"simulation written to {summary.events_path.parent}")
    for topic, count in summary.counts.items():
        table.add_row(topic, f"{count:,}")
    kinds = ", ".join(f"{k} {n}" for k, n in summary.invalid_by_kind.items() if n)
    table.add_row("invalid records", f"{summary.invalid:,}" + (f" ({kinds})" if kinds else ""))
    table.add_row("late events", f"{summary.late:,}")
    table.add_row("incidents", f"{summary.incidents} (see {summary.labels_path.name})")
    rate = summary.total / seconds if seconds > 0 else 0.0
    table.add_row("lines written", f"{summary.total:,} in {seconds:.1f}s ({rate:,.0f}/s)")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: `python -m stream_guard.simulate simulate --days 7 ...`."""
    parser = argparse.ArgumentParser(prog="stream_guard.simulate")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))
