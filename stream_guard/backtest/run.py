"""`stream-guard backtest`: replay one or more configurations and score them against labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from stream_guard.backtest.evaluate import Evaluation, evaluate, load_labels
from stream_guard.backtest.progress import progress_bar
from stream_guard.backtest.replay import build_replayer, replay
from stream_guard.backtest.report import SeriesRecorder, score_table, write_report
from stream_guard.config.rules import DetectorSpec, MetricRule, load_rules
from stream_guard.config.topics import load_topics
from stream_guard.errors import ConfigError

__all__ = ["apply_detector_overrides", "run_backtest"]


def apply_detector_overrides(rules: list[MetricRule], overrides: list[str]) -> list[MetricRule]:
    """``gmv=river_forecast,seasonality=96`` replaces gmv's detector (validated like a rule).

    >>> from stream_guard.config.topics import load_topics
    >>> rules = load_rules(Path("alert_rules"), load_topics())
    >>> [r.detector.type for r in apply_detector_overrides(rules, ["gmv=threshold,lower=1"])
    ...  if r.metric == "gmv"]
    ['threshold']
    """
    by_metric = {r.metric: r for r in rules}
    for spec in overrides:
        metric, _, rest = spec.partition("=")
        kind, *params = rest.split(",")
        if metric not in by_metric or not kind:
            raise ConfigError(f"--detector {spec!r}: expected METRIC=TYPE[,k=v], known metric")
        values = dict(p.split("=", 1) for p in params)
        try:
            detector = DetectorSpec.model_validate({"type": kind, **values})
        except ValueError as exc:
            raise ConfigError(f"--detector {spec!r}: {exc}") from None
        by_metric[metric] = by_metric[metric].model_copy(update={"detector": detector})
    return [by_metric[r.metric] for r in rules]


def _run_one(args: argparse.Namespace, rules_dir: Path, name: str, out: Console) -> Evaluation:
    topics = load_topics(args.topics_dir)
    rules = apply_detector_overrides(load_rules(rules_dir, topics), args.detector or [])
    incidents = load_labels(Path(args.labels))
    recorder = SeriesRecorder(incidents)
    replayer = build_replayer(rules_dir, args.topics_dir, rules=rules, on_score=recorder)
    inputs = [Path(p) for p in args.input]
    with progress_bar(inputs, f"backtest {name}", quiet=args.quiet) as advance:
        report_dir = Path(args.out) / name if args.out else None
        alerts_path = report_dir / "alerts.jsonl" if report_dir else None
        if report_dir:
            report_dir.mkdir(parents=True, exist_ok=True)
        summary = replay(replayer, inputs, alerts_path, advance)
    windows = {r.metric: int(r.window.total_seconds() * 1000) for r in rules}
    ev = evaluate(summary.alerts, incidents, windows)
    out.print(f"{name}: {summary.records:,} records in {summary.seconds:.1f}s "
              f"({summary.events_per_second:,.0f}/s), {len(summary.alerts)} alert records, "
              f"{len(ev.episodes)} episodes", markup=False)
    if report_dir:
        for path in write_report(report_dir, name, ev, incidents, recorder):
            out.print(f"  wrote {path}", markup=False)
    return ev


def run_backtest(args: argparse.Namespace, out: Console) -> int:
    dirs = [Path(d) for d in (args.rules or ["alert_rules"])]
    evals = {}
    for i, d in enumerate(dirs):
        name = d.name if len(dirs) == 1 or d.name not in {x.name for x in dirs[:i]} else f"{d}"
        evals[name] = _run_one(args, d, name, out)
    out.print(score_table(evals))
    return 0
