"""Replay throughput: a simulated week through the engine, exactly as `stream-guard replay` runs it.

    python benchmarks/replay.py [--data DIR] [--days 7] [--seed 11] [--repeat 3] [--profile]
    python benchmarks/replay.py --save-reference ref.json   # fingerprint of the results
    python benchmarks/replay.py --check ref.json            # same results as the reference?
    python benchmarks/replay.py --split                     # CPU time per stage

The dump (``events.jsonl``, ~1.1M records for a week at scale 1) is simulated once and cached
under ``benchmarks/.data/`` (gitignored). Each run builds a fresh engine and feeds it with
`build_replayer` + `run_replayer` from stream_guard/backtest/replay.py, the code path of the CLI.
Throughput is records per second, median of the runs, by wall clock and by this process's CPU
time (the machine may be shared: CPU time is the steadier of the two).

The fingerprint covers everything an optimisation must not change: the alert records byte for
byte (as written by ``replay --output``), the dead letters byte for byte, and the counters of
events, invalid events per reason, late events per metric, dropped series and closed windows.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.backtest.replay import (  # noqa: E402
    Replayer,
    build_replayer,
    iter_inputs,
    run_replayer,
)
from stream_guard.ingest.codec import DeadLetter  # noqa: E402
from stream_guard.ingest.files import count_lines  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402
from stream_guard.types import AlertRecord  # noqa: E402

out = Console(width=120)  # wide enough for profile rows, even when piped
err = Console(stderr=True)


@dataclass
class Run:
    records: int
    wall: float
    cpu: float
    fingerprint: dict[str, Any]


def ensure_dump(data: Path, days: int, seed: int, scale: float) -> Path:
    """The cached dump, simulated first if missing (same arguments, same bytes)."""
    events = data / "events.jsonl"
    if events.exists():
        return events
    err.print(f"simulating {days} days (seed {seed}, scale {scale}) into {data} (cached)")
    with _bar("simulate") as (progress, task):
        write_simulation(data, days=days, seed=seed, scale=scale,
                         progress=lambda done, total: progress.update(task, completed=done,
                                                                      total=total))
    return events


@contextmanager
def _bar(label: str, total: int | None = None) -> Iterator[tuple[Progress, Any]]:
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield progress, progress.add_task(label, total=total)


def replay_once(events: Path, rules: Path, total: int, label: str,
                wrap: Callable[[Callable[[], int]], int] | None = None,
                instrument: Callable[[Replayer], None] | None = None) -> Run:
    """One replay through a fresh engine; `wrap` runs the feeding (e.g. under cProfile),
    `instrument` may wrap the replayer's steps first."""
    dead: list[bytes] = []

    def keep(dl: DeadLetter) -> None:
        dead.append(orjson.dumps(dl.to_json()) + b"\n")

    replayer = build_replayer(rules, on_dead_letter=keep)
    if instrument is not None:
        instrument(replayer)
    alerts: list[AlertRecord] = []
    with _bar(label, total) as (progress, task):
        def feed() -> int:
            return run_replayer(replayer, iter_inputs([events]), alerts.append,
                              lambda n: progress.advance(task, n))

        wall, cpu = time.perf_counter(), time.process_time()
        records = wrap(feed) if wrap else feed()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    s = replayer.stats
    fingerprint = {
        "records": records,
        "alerts": len(alerts),
        "alerts_sha256": _digest(a.to_json() + b"\n" for a in alerts),
        "dead_letters_sha256": _digest(dead),
        "events": _flat(s.events),
        "invalid": _flat(s.invalid),
        "late": _flat(s.late),
        "dropped_series": _flat(s.dropped_series),
        "windows_closed": _flat(s.windows_closed),
        "points": _flat(s.points),
    }
    return Run(records, wall, cpu, fingerprint)


def _digest(chunks: Any) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _flat(counter: Counter[Any]) -> dict[str, int]:
    return {"/".join(k) if isinstance(k, tuple) else str(k): v
            for k, v in sorted(counter.items())}


def profile(events: Path, rules: Path, total: int, top: int) -> None:
    """One more run under cProfile: time per module, then the top functions by own time."""
    prof = cProfile.Profile()

    def under_profile(feed: Callable[[], int]) -> int:
        return prof.runcall(feed)

    replay_once(events, rules, total, "profile", under_profile)
    entries = _entries(prof)
    grand = sum(e[1] for e in entries.values())
    by_module: dict[str, float] = {}
    for (file, _line, _name), e in entries.items():
        by_module[_short(file)] = by_module.get(_short(file), 0.0) + e[1]
    table = Table("module", "own time", "share", title="profile: own time by module")
    for module, t in sorted(by_module.items(), key=lambda kv: -kv[1])[:10]:
        table.add_row(module, f"{t:.2f}s", f"{100 * t / grand:.0f}%")
    out.print(table)
    table = Table("function", "calls", "own time", "share", "cumulative",
                  title=f"profile: top {top} functions by own time (tottime)")
    table.columns[0].overflow = "fold"
    ranked = sorted(entries.items(), key=lambda kv: -kv[1][1])[:top]
    for (file, line, name), (calls, tt, ct) in ranked:
        where = f"{_short(file)}:{line}({name})" if line else name
        table.add_row(where, f"{calls:,}", f"{tt:.2f}s", f"{100 * tt / grand:.0f}%", f"{ct:.2f}s")
    out.print(table)


def split(events: Path, rules: Path, total: int) -> None:
    """One more run, its CPU time split by stage with `time.process_time` around the
    replayer's steps (a few calls per batch: unlike cProfile, it does not inflate code that
    makes many small calls): reading (JSON, validation, routing to a source stage), the
    engine (a closed window scored, explained, its episode), merging and closing, and the rest:
    the source stages' acceptors, the arrival estimate and the feeding loop."""
    spent: dict[str, float] = dict.fromkeys(("read", "advance", "engine"), 0.0)

    def timed(stage: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return step(*args, **kwargs)
            finally:
                spent[stage] += time.process_time() - started
        return run

    def instrument(replayer: Replayer) -> None:
        replayer.read = timed("read", replayer.read)  # type: ignore[method-assign]
        replayer.advance = timed("advance", replayer.advance)  # type: ignore[method-assign]
        for engine, _mergers in replayer.owners:
            engine.on_window = timed("engine", engine.on_window)  # type: ignore[method-assign]

    run = replay_once(events, rules, total, "split", instrument=instrument)
    stages = {
        "read: JSON, validation, routing": spent["read"],
        "source stages: acceptors, arrival estimate, loop": run.cpu - spent["read"]
        - spent["advance"],
        "merging and closing": spent["advance"] - spent["engine"],
        "engine: detect, explain, episodes": spent["engine"],
    }
    table = Table("stage", "CPU s", "share", "µs per record",
                  title=f"CPU time by stage ({run.cpu:.2f} s, {run.records:,} records)")
    for stage, cpu in stages.items():
        table.add_row(stage, f"{cpu:.2f}", f"{100 * cpu / run.cpu:.0f}%",
                      f"{1e6 * cpu / run.records:.2f}")
    out.print(table)


def _entries(prof: cProfile.Profile) -> dict[tuple[str, int, str], tuple[int, float, float]]:
    """(file, line, name) -> (calls, own time, cumulative), summed over code objects.

    `pstats` keeps one code object per (file, line, name) and drops the others: the generated
    feeders of the source stages of one topic (four of orders) would show a quarter of their
    time."""
    out: dict[tuple[str, int, str], tuple[int, float, float]] = {}
    for e in prof.getstats():
        code = e.code
        key = ((code.co_filename, code.co_firstlineno, code.co_name) if not isinstance(code, str)
               else ("~", 0, code))
        calls, own, cum = out.get(key, (0, 0.0, 0.0))
        out[key] = (calls + e.callcount, own + e.inlinetime, cum + e.totaltime)
    return out


def _short(file: str) -> str:
    path = Path(file)
    if path.is_absolute() and REPO in path.parents:
        return str(path.relative_to(REPO))
    return "(builtins)" if file == "~" else path.name


def compare(reference: dict[str, Any], got: dict[str, Any]) -> list[str]:
    return [f"{key}: reference {reference.get(key)!r}, now {got.get(key)!r}"
            for key in sorted(set(reference) | set(got)) if reference.get(key) != got.get(key)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=None,
                   help="dump directory (default benchmarks/.data/sim-<days>d-seed<seed>)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--rules", type=Path, default=REPO / "alert_rules")
    p.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    p.add_argument("--profile", action="store_true", help="one more run under cProfile")
    p.add_argument("--top", type=int, default=15, help="functions shown by --profile")
    p.add_argument("--split", action="store_true", help="one more run, CPU time per stage")
    p.add_argument("--save-reference", type=Path, default=None, help="write the fingerprint")
    p.add_argument("--check", type=Path, default=None, help="compare with a saved fingerprint")
    args = p.parse_args(argv)

    suffix = "" if args.scale == 1.0 else f"-x{args.scale:g}"
    data = args.data or REPO / "benchmarks" / ".data" / f"sim-{args.days}d-seed{args.seed}{suffix}"
    events = ensure_dump(data, args.days, args.seed, args.scale)
    total = count_lines([events])
    runs = [replay_once(events, args.rules, total, f"run {i + 1}/{args.repeat}")
            for i in range(args.repeat)]
    fp = runs[0].fingerprint
    if any(r.fingerprint != fp for r in runs[1:]):
        err.print("[red]runs disagree: the replay is not deterministic")
        return 1
    table = Table("records", "events/s (wall)", "events/s (cpu)", "alerts", "invalid", "late",
                  title=f"replay of {events} ({args.repeat} runs, median)")
    table.add_row(f"{runs[0].records:,}",
                  f"{statistics.median(r.records / r.wall for r in runs):,.0f}",
                  f"{statistics.median(r.records / r.cpu for r in runs):,.0f}",
                  f"{fp['alerts']}", f"{sum(fp['invalid'].values()):,}",
                  f"{sum(fp['late'].values()):,}")
    out.print(table)
    out.print("per run (s, wall/cpu): "
              + ", ".join(f"{r.wall:.2f}/{r.cpu:.2f}" for r in runs), markup=False)
    out.print(f"alerts sha256 {fp['alerts_sha256'][:16]}…, dead letters sha256 "
              f"{fp['dead_letters_sha256'][:16]}…", markup=False)
    if args.profile:
        profile(events, args.rules, total, args.top)
    if args.split:
        split(events, args.rules, total)
    if args.save_reference:
        args.save_reference.write_bytes(orjson.dumps(fp, option=orjson.OPT_INDENT_2))
        out.print(f"fingerprint saved to {args.save_reference}")
    if args.check:
        diffs = compare(orjson.loads(args.check.read_bytes()), fp)
        for line in diffs:
            out.print(f"[red]differs[/red] {line}")
        out.print("same results as the reference" if not diffs else
                  f"{len(diffs)} differences from the reference")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
