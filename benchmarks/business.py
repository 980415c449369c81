"""The business-metric yardstick: backtest the rules on several simulated weeks, one table.

    python benchmarks/business.py                         # fold A (11,12) and fold B (21,31,41)
    python benchmarks/business.py --fold B                # the held-out fold only
    python benchmarks/business.py --rules alert_rules --rules my_rules   # pick one per fold
    python benchmarks/business.py --seeds 5 --days 3 --jobs 1
    python benchmarks/business.py --detector gmv=auto     # swap a metric's detector everywhere
    python benchmarks/business.py --ablation river        # hand-tuned, auto and River models
    python benchmarks/business.py --scenario ratios       # the same folds, another scenario

Validation protocol (docs/validation.md): the seeds form two fixed folds. Fold A holds the
tuning seeds (11, 12: the shipped rules were tuned by hand on them, so their fold-A figures are
in-sample); fold B holds the held-out seeds (21, 31, 41). With one rules directory the script
chooses nothing and fold B is the figure to quote. With several (``--rules`` repeated), the
script chooses one per fold -- the best pooled F1 of precision and recall, then the shorter
median delay -- and reports it on the other fold, both ways; only those cross-fold rows are
quotable.

Each seed is simulated once (``out/business/s<seed>/``, or ``out/business/<scenario>/s<seed>/``
for ``--scenario``, reused when present: same seed, same bytes) and replayed through the same
engine `stream-guard backtest` runs, one process per seed.
The table lists, per seed and per metric, precision (per alert episode), recall (per incident),
the median detection delay in windows of the metric and in minutes, and how often the top slice
hint names the incident's slice; then the same pooled per fold.

``--detector METRIC=TYPE[,k=v]`` (as in ``stream-guard backtest``) swaps a metric's detector in
every configuration. ``--ablation river`` runs a fixed list of configurations over the shipped
rules -- the rules as shipped, every metric on ``auto``, then every metric on each River model
(Holt-Winters additive and multiplicative, SNARIMAX, HalfSpaceTrees) -- and prints one row per
configuration, metric and fold, plus the fold report (each fold's pick scored on the other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
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
from stream_guard.backtest.run import apply_detector_overrides  # noqa: E402
from stream_guard.config.rules import load_rules  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402

# The two folds, fixed: A = the seeds the shipped rules were tuned on, B = held out.
SEED_FOLDS: dict[str, tuple[int, ...]] = {"A": (11, 12), "B": (21, 31, 41)}
TUNING_SEEDS = SEED_FOLDS["A"]
HELD_OUT_SEEDS = SEED_FOLDS["B"]


METRICS = ("gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate")

# --ablation river: (name, detector override applied to every metric; None = as shipped)
RIVER_ABLATION: list[tuple[str, str | None]] = [
    ("shipped (hand-tuned)", None),
    ("auto", "auto"),
    ("river_forecast holtwinters", "river_forecast,model=holtwinters"),
    ("river_forecast holtwinters_mul", "river_forecast,model=holtwinters_mul"),
    ("river_forecast snarimax", "river_forecast,model=snarimax"),
    ("river_hst", "river_hst,seed=1"),
]


@dataclass(frozen=True)
class Candidate:
    """A configuration: a rules directory and detector overrides (``METRIC=TYPE[,k=v]``)."""

    name: str
    rules_dir: Path
    overrides: tuple[str, ...] = ()


@dataclass
class SeedResult:
    seed: int
    rules: int  # index of the rules directory (candidate)
    scores: dict[str, MetricScore]  # metric -> score; "all" for the total
    false_episodes: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)


def run_seed(seed: int, days: int, candidates: list[Candidate], data_dir: Path,
             scenario: str = "default") -> list[SeedResult]:
    """Simulate (unless already there) and backtest one seed with every configuration; runs
    in a worker process. Alerts go to ``alerts.jsonl`` (``alerts-<i>.jsonl`` for candidate i
    when there are several)."""
    out = data_dir / f"s{seed}"
    if not (out / "labels.json").exists():
        write_simulation(out, days=days, seed=seed, scenario=scenario)
    incidents = load_labels(out / "labels.json")
    results = []
    topics = load_topics()
    for i, candidate in enumerate(candidates):
        rules = apply_detector_overrides(load_rules(candidate.rules_dir, topics),
                                         list(candidate.overrides))
        replayer = build_replayer(candidate.rules_dir, rules=rules)
        alerts = out / ("alerts.jsonl" if len(candidates) == 1 else f"alerts-{i}.jsonl")
        summary = replay(replayer, [out / "events.jsonl"], alerts)
        windows = {r.metric: int(r.window.total_seconds() * 1000) for r in replayer.rules}
        ev = evaluate(summary.alerts, incidents, windows)
        missed = [f"{x.id} {x.metric} {x.slice or 'platform'}" for x in incidents
                  if not ev.matches[x.id]]
        false = [f"{e.metric} {e.slice or 'platform'} {e.episode_id}" for e in ev.false_episodes]
        results.append(SeedResult(seed, i, {**ev.by_metric, "all": ev.total}, false, missed))
    return results


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


def f1(s: MetricScore) -> float:
    """Harmonic mean of precision and recall (the selection criterion between rules)."""
    total = s.precision + s.recall
    return 2 * s.precision * s.recall / total if total else 0.0


def choose(results: list[SeedResult], seeds: tuple[int, ...], n_candidates: int) -> int:
    """The candidate a fold picks: best pooled F1 on its seeds, then the shorter median delay,
    then the first given."""
    def key(i: int) -> tuple[float, float, int]:
        s = pool([r for r in results if r.rules == i and r.seed in seeds])["all"]
        return (-f1(s), s.median_delay if s.median_delay is not None else float("inf"), i)
    return min(range(n_candidates), key=key)


def fold_of(seed: int) -> str:
    return next((k for k, seeds in SEED_FOLDS.items() if seed in seeds), "-")


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _row(label: str, s: MetricScore) -> list[str]:
    return [label, s.metric, str(s.incidents), str(s.detected), str(s.episodes),
            _fmt(s.precision), _fmt(s.recall), _fmt(s.median_delay),
            _fmt(s.median_delay_minutes, 0), _fmt(s.top_hint_rate)]


def table(results: list[SeedResult], groups: dict[str, list[int]], title: str) -> Table:
    t = Table("seed", "metric", "incidents", "detected", "episodes", "precision", "recall",
              "delay (windows)", "delay (min)", "top hint right", title=title)
    for column in t.columns[2:]:
        column.justify = "right"
    for r in sorted(results, key=lambda r: r.seed):
        for s in r.scores.values():
            t.add_row(*_row(f"{fold_of(r.seed)} {r.seed}", s))
        t.add_section()
    for name, seeds in groups.items():
        chosen = [r for r in results if r.seed in seeds]
        if chosen:
            for s in pool(chosen).values():
                t.add_row(*_row(name, s), style="bold" if s.metric == "all" else None)
            t.add_section()
    return t


def _summary(s: MetricScore) -> list[str]:
    return [f"{s.detected}/{s.incidents}", str(s.episodes), _fmt(s.precision), _fmt(s.recall),
            _fmt(f1(s)), _fmt(s.median_delay), _fmt(s.top_hint_rate)]


def fold_table(results: list[SeedResult], candidates: list[Candidate],
               folds: dict[str, tuple[int, ...]]) -> Table:
    """The headline: per fold, what is chosen where and the pooled scores of the scored fold."""
    t = Table("chosen on", "scored on", "rules", "detected", "episodes", "precision", "recall",
              "F1", "delay (windows)", "top hint", "", title="[bold]fold report[/]")
    for column in t.columns[3:10]:
        column.justify = "right"
    names = [c.name for c in candidates]

    def scored(k: str) -> str:
        return f"{k} ({','.join(map(str, folds[k]))})"

    if len(candidates) == 1:
        for k, seeds in folds.items():
            note = "in-sample (rules tuned by hand on A)" if k == "A" else "held out: quote"
            s = pool([r for r in results if r.seed in seeds])["all"]
            t.add_row("- (fixed)", scored(k), names[0], *_summary(s), note,
                      style="bold" if k != "A" else None)
        return t
    for chosen_on, seeds in folds.items():
        pick = choose(results, seeds, len(candidates))
        for scored_on, other in folds.items():
            s = pool([r for r in results if r.rules == pick and r.seed in other])["all"]
            held_out = scored_on != chosen_on
            t.add_row(chosen_on, scored(scored_on), f"{pick}: {names[pick]}", *_summary(s),
                      "held out: quote" if held_out else "in-sample",
                      style="bold" if held_out else None)
        t.add_section()
    return t


def ablation_table(results: list[SeedResult], candidates: list[Candidate],
                   folds: dict[str, tuple[int, ...]]) -> Table:
    """One row per configuration and metric: detected/incidents, episodes, P, R, delay, per
    fold (the configurations are fixed in advance, so every fold's figure is held out for
    them; only the pick among them, in the fold report, is chosen on a fold)."""
    t = Table("configuration", "metric",
              *(f"{k}: {c}" for k in folds for c in ("det/inc", "ep", "P", "R", "delay")),
              title="[bold]ablation: one configuration per row[/]")
    for column in t.columns[2:]:
        column.justify = "right"
    for i, c in enumerate(candidates):
        for metric in (*METRICS, "all"):
            row = [c.name, metric]
            for seeds in folds.values():
                s = pool([r for r in results if r.rules == i and r.seed in seeds]).get(
                    metric, MetricScore(metric))
                row += [f"{s.detected}/{s.incidents}", str(s.episodes), _fmt(s.precision),
                        _fmt(s.recall), _fmt(s.median_delay)]
            t.add_row(*row, style="bold" if metric == "all" else None)
        t.add_section()
    return t


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", choices=[*SEED_FOLDS, "both"], default="both",
                        help="the seeds of fold A, of fold B, or both (default)")
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help="comma-separated seeds instead of the folds (no fold report "
                             "for seeds outside them)")
    parser.add_argument("--days", type=int, default=7, help="days per simulated run")
    parser.add_argument("--rules", type=Path, action="append", default=None,
                        help="a rules directory; repeat to let each fold choose one")
    parser.add_argument("--data", type=Path, default=REPO / "out" / "business",
                        help="where simulations (and alerts) are kept")
    parser.add_argument("--detector", action="append", default=[], metavar="METRIC=TYPE[,k=v]",
                        help="swap a metric's detector in every configuration (repeatable)")
    parser.add_argument("--ablation", choices=["river"], default=None,
                        help="run a fixed list of configurations (see the module doc)")
    parser.add_argument("--scenario", default="default",
                        help="simulation scenario (stream_guard/simulate/scenarios.py); the "
                             "folds keep their seeds, data goes to DATA/<scenario>/")
    parser.add_argument("--jobs", type=int, default=None,
                        help="seeds run in parallel (default: one per CPU, at most one per seed)")
    args = parser.parse_args()
    dirs: list[Path] = args.rules or [REPO / "alert_rules"]
    candidates = [Candidate(str(d), d, tuple(args.detector)) for d in dirs]
    if args.ablation == "river":
        candidates = [Candidate(name, dirs[0], tuple(args.detector) + (
            tuple(f"{m}={override}" for m in METRICS) if override else ()))
            for name, override in RIVER_ABLATION]
    if args.seeds is not None:
        seeds = args.seeds
    elif args.fold == "both":
        seeds = [s for fold in SEED_FOLDS.values() for s in fold]
    else:
        seeds = list(SEED_FOLDS[args.fold])
    folds = {k: tuple(s for s in fold if s in seeds) for k, fold in SEED_FOLDS.items()}
    folds = {k: fold for k, fold in folds.items() if fold}
    data = args.data if args.scenario == "default" else args.data / args.scenario
    jobs = args.jobs or max(1, min(len(seeds), os.cpu_count() or 1))
    console = Console(width=max(Console().width, 160))
    console.print("folds: " + "; ".join(f"{k} = seeds {','.join(map(str, v))}"
                                        for k, v in SEED_FOLDS.items())
                  + " (A: the shipped rules' tuning seeds; B: held out)", highlight=False)
    results: list[SeedResult] = []
    columns = (TextColumn("[bold]simulate + backtest"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.description}"))
    started = time.monotonic()
    with Progress(*columns, console=Console(stderr=True)) as bar, \
            ProcessPoolExecutor(max_workers=jobs) as workers:
        task = bar.add_task("", total=len(seeds))
        futures = {workers.submit(run_seed, s, args.days, candidates, data,
                                  args.scenario): s
                   for s in seeds}
        for done in as_completed(futures):
            results.extend(done.result())
            bar.update(task, advance=1, description=f"seed {futures[done]} done")
    groups = {f"fold {k}": list(v) for k, v in folds.items()}
    groups["other"] = [s for s in seeds if fold_of(s) == "-"]
    for i, candidate in enumerate(candidates):
        mine = [r for r in results if r.rules == i]
        title = f"business metrics: configuration {i}: {candidate.name}"
        if candidate.overrides:
            title += f" ({'; '.join(candidate.overrides)})"
        console.print(table(mine, groups, title))
        for r in sorted(mine, key=lambda r: r.seed):
            for line in r.missed:
                console.print(f"seed {r.seed} missed: {line}", markup=False)
            for line in r.false_episodes:
                console.print(f"seed {r.seed} false episode: {line}", markup=False)
    if folds and len(candidates) > 1:
        console.print(ablation_table(results, candidates, folds))
    if folds:
        console.print(fold_table(results, candidates, folds))
    if len(candidates) == 1:
        totals = pool(results)["all"]
        delay = statistics.median(totals.delays) if totals.delays else None
        console.print(f"all seeds (mixes folds, not for quoting): precision "
                      f"{totals.precision:.3f}, recall {totals.recall:.3f}, median delay "
                      f"{_fmt(delay)} windows, top hint {totals.top_hint_rate:.2f}", markup=False)
    console.print(f"wall time {time.monotonic() - started:.0f} s", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
