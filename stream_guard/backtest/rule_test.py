"""`stream-guard rules test RULE.yaml --input DUMP`: what one rule would have raised, no labels.

The rule alone is replayed over the records of the topics it reads (and governance actions,
for intervention hints) with the replay path (backtest/replay.py) and the calendar beside it;
its alert records are grouped into episodes (alert/history.py), printed per day (UTC, by when
each episode started) with their slices, and plotted: the metric's platform-wide value against
the expected one, each episode shaded from its first window to its last record. ElastAlert's
``test-rule``, for stream-guard rules.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson

from stream_guard.alert.history import EpisodeHistory, History, group_episodes
from stream_guard.backtest.replay import ReplaySummary, build_replayer, iter_inputs, run_replayer
from stream_guard.backtest.report import SeriesRecorder, plot_series, to_datetime
from stream_guard.config.rules import MetricRule, load_rule
from stream_guard.config.topics import load_topics
from stream_guard.explain.context import INTERVENTIONS_TOPIC
from stream_guard.sinks.slack_blocks import human_duration
from stream_guard.types import epoch_ms, format_slice, iso_utc, slice_key

__all__ = ["RuleTest", "episode_lines", "plot", "run_rule_test", "to_json"]


@dataclass
class RuleTest:
    """The rule, what its replay did, its episodes (oldest first) and its global series."""

    rule: MetricRule
    summary: ReplaySummary
    episodes: list[EpisodeHistory]
    series: list[tuple[int, float, float | None, bool]]


def run_rule_test(rule_path: Path, inputs: Sequence[Path],
                  topics_dir: Path | None = None) -> RuleTest:
    """Replays `inputs` through the rule at `rule_path` (ConfigError if it is broken)."""
    rule = load_rule(rule_path, load_topics(topics_dir))
    recorder = SeriesRecorder([])  # keeps the platform-wide series
    replayer = build_replayer(rule_path.parent, topics_dir, rules=[rule], on_score=recorder)
    summary = ReplaySummary(replayer=replayer)
    wanted = {s.topic for s in rule.sources} | {INTERVENTIONS_TOPIC}
    records = (r for r in iter_inputs(inputs) if r[0] in wanted)  # (topic, key, value, origin)
    started = time.perf_counter()
    summary.records = run_replayer(replayer, records, summary.alerts.append)
    summary.seconds = time.perf_counter() - started
    episodes = sorted(group_episodes(History(alerts=summary.alerts)),
                      key=lambda e: (epoch_ms(e.first.started_at), e.episode_id))
    return RuleTest(rule, summary, episodes, recorder.series[(rule.metric, ())])


def _day(e: EpisodeHistory) -> str:
    return iso_utc(epoch_ms(e.first.started_at))[:10]


def _lasted(e: EpisodeHistory) -> str:
    return human_duration(epoch_ms(e.last.window_end) - epoch_ms(e.first.window_start))


def _row(e: EpisodeHistory) -> dict[str, Any]:
    severities = {r.severity for r in e.records if r.status != "resolved"}
    return {"episode_id": e.episode_id, "day": _day(e),
            "started_at": iso_utc(epoch_ms(e.first.started_at)),
            "slice": format_slice(slice_key(e.first.slice)), "direction": e.first.direction,
            "severity": "critical" if "critical" in severities else "warning",
            "peak_score": round(e.last.peak_score, 2), "status": e.status,
            "lasted": _lasted(e), "updates": len(e.records),
            "top_hint": e.first.hints[0].summary if e.first.hints else ""}


def _days(test: RuleTest) -> dict[str, list[EpisodeHistory]]:
    """Every UTC day the replay covered (its windows), in order, with the episodes started."""
    days: dict[str, list[EpisodeHistory]] = {iso_utc(t)[:10]: [] for t, *_ in test.series}
    for e in test.episodes:
        days.setdefault(_day(e), []).append(e)
    return dict(sorted(days.items()))


def _count(n: int) -> str:
    return f"{n} episode{'' if n == 1 else 's'}"


def episode_lines(test: RuleTest) -> list[str]:
    """Per day: how many episodes started, then each one (time, slice, direction, severity,
    peak score, how long, status) with its top hint below."""
    days = _days(test)
    lines = [f"{test.rule.rule_id}: {_count(len(test.episodes))} over {len(days)} days"]
    for day, episodes in days.items():
        lines.append(f"{day}  {_count(len(episodes))}")
        for e in episodes:
            r = _row(e)
            lines.append(f"  {r['started_at'][11:16]}  {r['slice']}  {r['direction']}  "
                         f"{r['severity']}  peak {r['peak_score']:.1f}  lasted {r['lasted']}  "
                         f"{r['status']}")
            if r["top_hint"]:
                lines.append(f"         {r['top_hint']}")
    return lines


def to_json(test: RuleTest) -> bytes:
    """The episodes and the per-day counts as JSON (`rules test --json`)."""
    days = {day: len(episodes) for day, episodes in _days(test).items()}
    data = {"rule": test.rule.rule_id, "records": test.summary.records,
            "alert_records": len(test.summary.alerts), "episodes_per_day": days,
            "episodes": [_row(e) for e in test.episodes]}
    return orjson.dumps(data, option=orjson.OPT_INDENT_2)


def plot(test: RuleTest, path: Path) -> Path:
    """The platform-wide series, episodes shaded (red critical, orange warning) and labelled
    with their slices, as a PNG."""
    fig, ax = plt.subplots(figsize=(13, 3.6))
    plot_series(ax, test.series, f"{test.rule.rule_id}: platform-wide value, "
                                 f"{len(test.episodes)} episodes shaded")
    for e in test.episodes:
        row = _row(e)
        start = to_datetime(epoch_ms(e.first.window_start))
        ax.axvspan(start, to_datetime(epoch_ms(e.last.window_end)),
                   color="red" if row["severity"] == "critical" else "orange", alpha=0.2)
        ax.annotate(row["slice"][:40], (start, 1.0), xycoords=("data", "axes fraction"),
                    fontsize=6, rotation=90, va="top", ha="right")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
