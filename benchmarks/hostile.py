"""Hostile input at scale: every kind of stream_guard/simulate/hostile.py injected into a bigger
simulated dump, replayed clean and dirty, and one table of what happened to each kind.

    python benchmarks/hostile.py [--days 7] [--scale 1.0] [--seed 11] [--pending separate]
                                 [--kinds a,b,...] [--memory-limit-mb 4096] [--json out.json]

The clean dump (no invalid records of the simulator's own) is simulated once and cached under
``benchmarks/.data/`` (gitignored). Each replay is ``stream-guard replay ... --summary`` in a
child process, exactly as a user runs it, with its peak RSS measured and its address space
capped (a runaway replay fails alone). Kinds still `PENDING` go, by default, into a dirty dump
of their own (``--pending separate``): one of them breaking replay cannot hide the verdicts of
the others. ``--pending include`` puts them with the rest, ``skip`` leaves them out.

The table: kind, lines injected, the outcome expected, the outcome observed (dead-letter
reasons on the kind's lines; for duplicates / late / folded the summary counter's change over
the clean run, shared by every kind of that counter), and OK / FAIL (PENDING-OK, PENDING-FAIL
for pending kinds). Under it, per dirty run: exit code, peak RSS against the clean run's, time,
and whether the alert records (fingerprint, status, reason, window, severity) changed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.simulate.hostile import (  # noqa: E402
    KIND_BY_NAME,
    KINDS,
    PENDING,
    Injection,
    Kind,
    ReplayRun,
    Verdict,
    counter_deltas,
    judge,
    run_replay,
    stray_dead_letters,
    write_hostile,
)
from stream_guard.simulate.writer import write_simulation  # noqa: E402

out = Console(width=160)
err = Console(stderr=True)


@dataclass
class DirtyRun:
    """One dirty dump: the kinds in it, where they landed, its replay and the verdicts."""

    label: str
    kinds: list[Kind]
    injections: list[Injection]
    run: ReplayRun
    verdicts: list[Verdict]


@contextmanager
def step(label: str, total: int | None = None) -> Iterator[tuple[Progress, TaskID]]:
    """A progress line for one step: a bar when `total` is known, else a spinner."""
    columns = (SpinnerColumn(), TextColumn(f"[bold]{label}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        yield progress, progress.add_task(label, total=total)


def ensure_clean_dump(data: Path, days: int, seed: int, scale: float) -> Path:
    """The cached clean dump, simulated first if missing (same arguments, same bytes)."""
    events = data / "events.jsonl"
    if events.exists():
        return events
    with step(f"simulate {days} days, scale {scale}") as (progress, task):
        write_simulation(data, days=days, seed=seed, scale=scale, invalid_fraction=0,
                         progress=lambda done, total: progress.update(task, completed=done,
                                                                      total=total))
    return events


def replay(dump: Path, out_dir: Path, label: str, memory_limit_mb: int) -> ReplayRun:
    with step(f"replay {label}"):
        return run_replay(dump, out_dir, REPO / "alert_rules", memory_limit_mb=memory_limit_mb,
                          timeout_s=3600)


def dirty_run(clean_dump: Path, clean: ReplayRun, label: str, kinds: list[Kind], seed: int,
              memory_limit_mb: int) -> DirtyRun:
    """Injects `kinds` into the clean dump, replays it and judges every kind."""
    work = clean_dump.parent / f"dirty-{label}"
    work.mkdir(exist_ok=True)
    with step(f"inject {len(kinds)} kinds ({label})"):
        injections = write_hostile(clean_dump, work / "events.jsonl", kinds, seed)
    run = replay(work / "events.jsonl", work / "replay", f"dirty ({label})", memory_limit_mb)
    verdicts = judge(kinds, injections, run.dead_letters, counter_deltas(clean, run))
    return DirtyRun(label, kinds, injections, run, verdicts)


def choose_kinds(names: str | None, pending: str) -> list[tuple[str, list[Kind]]]:
    """The dirty dumps to make, (label, kinds), by the --kinds and --pending options."""
    kinds = [KIND_BY_NAME[n] for n in names.split(",")] if names else list(KINDS)
    active = [k for k in kinds if k.name not in PENDING]
    waiting = [k for k in kinds if k.name in PENDING]
    groups = {"separate": [("active", active), ("pending", waiting)],
              "include": [("all", kinds)], "skip": [("active", active)]}[pending]
    return [(label, group) for label, group in groups if group]


def verdict_table(runs: Sequence[DirtyRun]) -> Table:
    table = Table("kind", "lines", "expected", "observed", "verdict",
                  title="hostile input: what replay did with each kind")
    for dirty in runs:
        for v in dirty.verdicts:
            status = ("PENDING-" if v.kind in PENDING else "") + ("OK" if v.ok else "FAIL")
            style = "green" if v.ok else ("yellow" if v.kind in PENDING else "red")
            table.add_row(v.kind, f"{v.injected:,}", v.expected, v.observed,
                          f"[{style}]{status}[/]")
    return table


def run_table(clean: ReplayRun, runs: Sequence[DirtyRun]) -> Table:
    table = Table("run", "kinds", "lines", "exit", "peak RSS", "seconds", "alerts",
                  "stray dead letters", title="replays")
    table.add_row("clean", "-", "-", str(clean.exit_code), f"{clean.peak_rss_mb:,.0f} MB",
                  f"{clean.seconds:.1f}", f"{len(clean.alerts)} records", "-")
    for d in runs:
        stray = len(stray_dead_letters(d.injections, d.run.dead_letters))
        table.add_row(d.label, str(len(d.kinds)), f"{len(d.injections):,}", str(d.run.exit_code),
                      f"{d.run.peak_rss_mb:,.0f} MB ({d.run.peak_rss_mb - clean.peak_rss_mb:+.0f})",
                      f"{d.run.seconds:.1f}", alerts_change(clean, d.run), str(stray))
    return table


def alerts_change(clean: ReplayRun, dirty: ReplayRun) -> str:
    if dirty.alerts == clean.alerts:
        return f"[green]unchanged[/] ({len(clean.alerts)} records)"
    lost = len(set(clean.alerts) - set(dirty.alerts))
    new = len(set(dirty.alerts) - set(clean.alerts))
    return f"[red]CHANGED[/]: {lost} of {len(clean.alerts)} missing, {new} new"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--kinds", default=None, help="comma-separated kind names (default: all)")
    p.add_argument("--pending", choices=["separate", "include", "skip"], default="separate")
    p.add_argument("--memory-limit-mb", type=int, default=4096)
    p.add_argument("--json", type=Path, default=None, help="write the verdicts as JSON")
    args = p.parse_args(argv)
    data = REPO / "benchmarks" / ".data" / f"hostile-{args.days}d-seed{args.seed}-x{args.scale}"
    clean_dump = ensure_clean_dump(data, args.days, args.seed, args.scale)
    clean = replay(clean_dump, data / "clean", "clean", args.memory_limit_mb)
    runs = [dirty_run(clean_dump, clean, label, kinds, args.seed, args.memory_limit_mb)
            for label, kinds in choose_kinds(args.kinds, args.pending)]
    out.print(verdict_table(runs))
    out.print(run_table(clean, runs))
    if args.json is not None:
        args.json.write_bytes(orjson.dumps([asdict(v) for d in runs for v in d.verdicts],
                                           option=orjson.OPT_INDENT_2))
    return 0 if all(passed(clean, d) for d in runs) else 1


def passed(clean: ReplayRun, dirty: DirtyRun) -> bool:
    """Every kind not pending got its outcome, in a run that exited 0 with the clean alerts
    and refused no valid record (a run of pending kinds only is not judged)."""
    active = [v for v in dirty.verdicts if v.kind not in PENDING]
    return not active or (dirty.run.exit_code == 0 and all(v.ok for v in active)
                          and dirty.run.alerts == clean.alerts
                          and not stray_dead_letters(dirty.injections, dirty.run.dead_letters))


if __name__ == "__main__":
    sys.exit(main())
