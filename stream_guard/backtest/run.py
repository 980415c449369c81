"""`stream-guard backtest`: replay one or more configurations and score them against labels.

With several ``--rules`` directories, each configuration's report goes into its own directory
under ``--out``, named by the shortest tail of its path that no other directory shares
(``a/alert_rules`` and ``b/alert_rules`` become ``a-alert_rules`` and ``b-alert_rules``), and
every configuration is diffed against the first one (`report.diff_episodes`).

``--feedback DUMP`` takes the labels from analysts' answers instead of ``--labels``
(backtest/feedback_labels.py).

``--detector METRIC=TYPE[,k=v]...`` replaces a metric's detector in every configuration; each
``v`` is read as a YAML scalar or flow collection (``96``, ``0.5``, ``true``, ``[1, 2, 4]``),
and commas inside brackets or braces do not split parameters.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError
from rich.console import Console

from stream_guard.backtest.evaluate import Evaluation, evaluate, load_labels
from stream_guard.backtest.feedback_labels import FeedbackLabels, judged_only, labels_from_feedback
from stream_guard.backtest.progress import progress_bar
from stream_guard.backtest.replay import build_replayer, replay
from stream_guard.backtest.report import (
    ConfigInfo,
    SeriesRecorder,
    diff_episodes,
    diff_lines,
    score_table,
    write_diff,
    write_report,
)
from stream_guard.config.errors import format_validation_error
from stream_guard.config.rules import DetectorSpec, MetricRule, load_rules
from stream_guard.config.topics import load_topics
from stream_guard.errors import ConfigError
from stream_guard.types import AlertRecord

__all__ = [
    "DetectorOverride",
    "apply_detector_overrides",
    "config_names",
    "parse_detector_override",
    "run_backtest",
]

_OPEN, _CLOSE = "[{", "]}"


@dataclass(frozen=True)
class DetectorOverride:
    """One ``--detector`` option: the metric, the option as given, the validated detector."""

    metric: str
    option: str
    detector: DetectorSpec

    def record(self, replaced: DetectorSpec) -> dict[str, Any]:
        """What the report says about it: the detector in effect and the one it replaced."""
        return {"metric": self.metric, "option": self.option,
                "detector": self.detector.model_dump(mode="json"),
                "replaced": replaced.model_dump(mode="json")}


def split_params(text: str) -> list[str]:
    """`text` split on the commas outside brackets and braces.

    >>> split_params("seasonal,horizons=[1,2],alpha=0.1")
    ['seasonal', 'horizons=[1,2]', 'alpha=0.1']
    """
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in _OPEN) - (char in _CLOSE)
        if char == "," and depth <= 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _error(option: str, problem: str) -> ConfigError:
    return ConfigError(f"--detector {option!r}: {problem}")


def _yaml_value(option: str, key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise _error(option, f"{key}: {text!r} is not a YAML value ({problem})") from None


def _params(option: str, parts: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for part in parts:
        key, sep, text = part.partition("=")
        if not sep or not key.strip():
            raise _error(option, f"expected k=v, got {part!r}")
        if key.strip() in params:
            raise _error(option, f"{key.strip()} given twice")
        params[key.strip()] = _yaml_value(option, key.strip(), text)
    return params


def parse_detector_override(option: str) -> DetectorOverride:
    """``gmv=seasonal,horizons=[1,2,4],alpha=0.1`` as a validated override; a bad option raises
    a one-line ConfigError naming it.

    >>> parse_detector_override("gmv=seasonal,horizons=[1,2],alpha=0.1").detector.params
    {'horizons': [1, 2], 'alpha': 0.1}
    """
    metric, _, rest = option.partition("=")
    kind, *parts = split_params(rest)
    if not metric.strip() or not kind.strip():
        raise _error(option, "expected METRIC=TYPE[,k=v]")
    params = _params(option, parts)
    try:
        detector = DetectorSpec.model_validate({**params, "type": kind.strip()})
    except ValidationError as exc:
        problems = (p.removeprefix("(top level): ").removeprefix("Value error, ")
                    for p in format_validation_error(exc))
        raise _error(option, "; ".join(problems)) from None
    return DetectorOverride(metric.strip(), option, detector)


def apply_detector_overrides(
    rules: list[MetricRule], overrides: Sequence[DetectorOverride | str]
) -> list[MetricRule]:
    """The rules with each override's metric given its detector (validated like a rule).

    >>> from stream_guard.config.topics import load_topics
    >>> rules = load_rules(Path("alert_rules"), load_topics())
    >>> [r.detector.type for r in apply_detector_overrides(rules, ["gmv=threshold,lower=1"])
    ...  if r.metric == "gmv"]
    ['threshold']
    """
    by_metric = {r.metric: r for r in rules}
    for item in overrides:
        o = parse_detector_override(item) if isinstance(item, str) else item
        if o.metric not in by_metric:
            raise _error(o.option, f"no metric {o.metric!r} (known: {', '.join(by_metric)})")
        by_metric[o.metric] = by_metric[o.metric].model_copy(update={"detector": o.detector})
    return [by_metric[r.metric] for r in rules]


def config_names(dirs: Sequence[Path]) -> list[str]:
    """A directory name per rules directory, distinct, each one path component.

    >>> config_names([Path("/x/a/alert_rules"), Path("/x/b/alert_rules"), Path("/y/mine")])
    ['a-alert_rules', 'b-alert_rules', 'mine']
    >>> config_names([Path("/x/rules"), Path("/x/rules")])
    ['rules', 'rules-2']
    """
    paths = [d.resolve().parts[1:] or ("root",) for d in dirs]
    names = [_distinct_tail(p, paths) for p in paths]
    return [n if names[:i].count(n) == 0 else f"{n}-{names[:i].count(n) + 1}"
            for i, n in enumerate(names)]


def _distinct_tail(parts: tuple[str, ...], others: list[tuple[str, ...]]) -> str:
    for k in range(1, len(parts) + 1):
        if sum(o[-k:] == parts[-k:] for o in others) == 1:
            return "-".join(parts[-k:])
    return parts[-1]  # the same directory given twice


def _run_one(
    args: argparse.Namespace, rules_dir: Path, name: str, overrides: list[DetectorOverride],
    out: Console,
) -> Evaluation:
    topics = load_topics(args.topics_dir)
    original = load_rules(rules_dir, topics)
    rules = apply_detector_overrides(original, overrides)
    replaced = {r.metric: r.detector for r in original}
    info = ConfigInfo(name, str(rules_dir),
                      tuple(o.record(replaced[o.metric]) for o in overrides))
    feedback = labels_from_feedback(args.feedback) if args.feedback else None
    incidents = feedback.real if feedback else load_labels(Path(args.labels))
    recorder = SeriesRecorder(incidents)
    replayer = build_replayer(rules_dir, args.topics_dir, rules=rules, on_score=recorder)
    inputs = [Path(p) for p in args.input]
    report_dir = Path(args.out) / name if args.out else None
    with progress_bar(inputs, f"backtest {name}", quiet=args.quiet) as advance:
        if report_dir:
            report_dir.mkdir(parents=True, exist_ok=True)
        summary = replay(replayer, inputs, report_dir / "alerts.jsonl" if report_dir else None,
                         advance)
    windows = {r.metric: int(r.window.total_seconds() * 1000) for r in rules}
    alerts = summary.alerts
    if feedback:
        alerts = judged_only(alerts, feedback.judged, windows)
        _feedback_note(feedback, summary.alerts, alerts, report_dir, out)
    ev = evaluate(alerts, incidents, windows)
    out.print(f"{name} ({rules_dir}): {summary.records:,} records in {summary.seconds:.1f}s "
              f"({summary.events_per_second:,.0f}/s), {len(summary.alerts)} alert records, "
              f"{len(ev.episodes)} episodes", markup=False)
    if report_dir:
        for path in write_report(report_dir, info, ev, incidents, recorder):
            out.print(f"  wrote {path}", markup=False)
    return ev


def _feedback_note(labels: FeedbackLabels, replayed: list[AlertRecord],
                   kept: list[AlertRecord], report_dir: Path | None, out: Console) -> None:
    """Says what the feedback labels are and what was left out; writes them as labels.json."""
    left_out = len({a.episode_id for a in replayed} - {a.episode_id for a in kept})
    out.print(f"labels from feedback: {len(labels.judged)} judged episodes, {len(labels.real)} "
              f"real; {left_out} replayed episodes match no judged one and are left out; "
              f"{labels.unmatched} answers without their episode's records", markup=False,
              soft_wrap=True)
    if report_dir:
        path = report_dir / "feedback-labels.json"
        path.write_bytes(orjson.dumps(labels.to_json(), option=orjson.OPT_INDENT_2))
        out.print(f"  wrote {path}", markup=False)


def _compare(evals: dict[str, Evaluation], out_dir: Path | None, out: Console) -> None:
    """Every configuration's episodes against the first one's, printed and written."""
    (base, first), *others = evals.items()
    for name, ev in others:
        diff = diff_episodes(first, ev)
        for line in diff_lines(base, name, diff):
            out.print(line, markup=False, highlight=False)
        for path in write_diff(out_dir, base, name, diff) if out_dir else []:
            out.print(f"  wrote {path}", markup=False)


def run_backtest(args: argparse.Namespace, out: Console) -> int:
    dirs = [Path(d) for d in (args.rules or ["alert_rules"])]
    overrides = [parse_detector_override(o) for o in args.detector or []]
    for o in overrides:
        out.print(f"detector override: {o.option}", markup=False, highlight=False)
    evals = {name: _run_one(args, d, name, overrides, out)
             for d, name in zip(dirs, config_names(dirs), strict=True)}
    out.print(score_table(evals))
    _compare(evals, Path(args.out) if args.out else None, out)
    return 0
