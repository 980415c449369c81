"""The business-metric yardstick: backtest the rules on several simulated weeks, one table.

    python benchmarks/business.py                         # tuning seeds 11,12 + held-out 21,31,41
    python benchmarks/business.py --seeds 21,31,41 --rules my_rules
    python benchmarks/business.py --seeds 5 --days 3 --jobs 1

Each seed is simulated once (``out/business/s<seed>/``, reused when present: same seed, same
bytes) and replayed through the same engine `stream-guard backtest` runs, one process per seed.
The table lists, per seed and per metric, precision (per alert episode), recall (per incident),
the median detection delay in windows of the metric and in minutes, and how often the top slice
hint names the incident's slice; then the same pooled over the seeds of each group (the tuning
seeds apart from the held-out ones, so that a number tuned on is never quoted as validation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.backtest.evaluate import MetricScore, evaluate, load_labels  # noqa: E402
from stream_guard.backtest.replay import build_replayer, replay  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402

TUNING_SEEDS = (11, 12)
HELD_OUT_SEEDS = (21, 31, 41)


@dataclass
class SeedResult:
    seed: int
    scores: dict[str, MetricScore]  # metric -> score; "all" for the total
    false_episodes: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def run_seed(seed: int, days: int, rules_dir: Path, data_dir: Path) -> SeedResult:
    """Simulate (unless already there) and backtest one seed; runs in a worker process."""
    out = data_dir / f"s{seed}"
    if not (out / "labels.json").exists():
        write_simulation(out, days=days, seed=seed)
    incidents = load_labels(out / "labels.json")
    replayer = build_replayer(rules_dir)
    summary = replay(replayer, [out / "events.jsonl"], out / "alerts.jsonl")
    windows = {r.metric: int(r.window.total_seconds() * 1000) for r in replayer.rules}
    ev = evaluate(summary.alerts, incidents, windows)
    missed = [f"{i.id} {i.metric} {i.slice or 'platform'}" for i in incidents
              if not ev.matches[i.id]]
    false = [f"{e.metric} {e.slice or 'platform'} {e.episode_id}" for e in ev.false_episodes]
    return SeedResult(seed, {**ev.by_metric, "all": ev.total}, false, missed)


def pool(results: list[SeedResult]) -> dict[str, MetricScore]:
    """Per-metric scores summed over seeds (pooled counts, pooled delays)."""
    pooled: dict[str, MetricScore] = {}
    for r in results:
        for metric, s in r.scores.items():
            p = pooled.setdefault(metric, MetricScore(metric))
            p.incidents += s.incidents
            p.detected += s.detected
            p.episodes += s.episodes
            p.true_episodes += s.true_episodes
            p.delays += s.delays
            p.delays_minutes += s.delays_minutes
            p.top_hint_right += s.top_hint_right
    return pooled


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _row(label: str, s: MetricScore) -> list[str]:
    return [label, s.metric, str(s.incidents), str(s.detected), str(s.episodes),
            _fmt(s.precision), _fmt(s.recall), _fmt(s.median_delay),
            _fmt(s.median_delay_minutes, 0), _fmt(s.top_hint_rate)]


def table(results: list[SeedResult], groups: dict[str, list[int]]) -> Table:
    t = Table("seed", "metric", "incidents", "detected", "episodes", "precision", "recall",
              "delay (windows)", "delay (min)", "top hint right", title="business metrics")
    for column in t.columns[2:]:
        column.justify = "right"
    for r in sorted(results, key=lambda r: r.seed):
        for s in r.scores.values():
            t.add_row(*_row(str(r.seed), s))
        t.add_section()
    for name, seeds in groups.items():
        chosen = [r for r in results if r.seed in seeds]
        if chosen:
            for s in pool(chosen).values():
                t.add_row(*_row(name, s), style="bold" if s.metric == "all" else None)
            t.add_section()
    return t


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_seeds,
                        default=[*TUNING_SEEDS, *HELD_OUT_SEEDS], help="comma-separated seeds")
    parser.add_argument("--days", type=int, default=7, help="days per simulated run")
    parser.add_argument("--rules", type=Path, default=REPO / "alert_rules")
    parser.add_argument("--data", type=Path, default=REPO / "out" / "business",
                        help="where simulations (and alerts) are kept")
    parser.add_argument("--jobs", type=int, default=5, help="seeds run in parallel")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 130))
    results: list[SeedResult] = []
    columns = (TextColumn("[bold]simulate + backtest"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=Console(stderr=True)) as bar, \
            ProcessPoolExecutor(max_workers=args.jobs) as workers:
        task = bar.add_task("", total=len(args.seeds))
        futures = {workers.submit(run_seed, s, args.days, args.rules, args.data): s
                   for s in args.seeds}
        for done in as_completed(futures):
            results.append(done.result())
            bar.update(task, advance=1, description=f"seed {futures[done]} done")
    groups = {"tuning": [s for s in args.seeds if s in TUNING_SEEDS],
              "held-out": [s for s in args.seeds if s not in TUNING_SEEDS]}
    console.print(table(results, groups))
    for r in sorted(results, key=lambda r: r.seed):
        for line in r.missed:
            console.print(f"seed {r.seed} missed: {line}", markup=False)
        for line in r.false_episodes:
            console.print(f"seed {r.seed} false episode: {line}", markup=False)
    totals = pool(results)["all"]
    delay = statistics.median(totals.delays) if totals.delays else None
    console.print(f"all seeds: precision {totals.precision:.3f}, recall {totals.recall:.3f}, "
                  f"median delay {_fmt(delay)} windows, top hint {totals.top_hint_rate:.2f}",
                  markup=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
