"""Alert records out of the engine, and their published contract in topics/alerts.yaml.

The record is `stream_guard.types.AlertRecord`; `build_record` makes one from an episode update,
validated like any record read back, so the engine cannot publish what the notifier would refuse.
Its JSON Schema is the value schema of the alerts topic; after changing the model, regenerate
the file (a test fails until then)::

    python -m stream_guard.alert.record           # rewrite topics/alerts.yaml
    python -m stream_guard.alert.record --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stream_guard.alert.episodes import Episode
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import default_topics_dir
from stream_guard.config.yamlfile import read_mapping
from stream_guard.types import AlertRecord, RootCauseHint, Score, SliceKey, iso_utc, slice_dict

__all__ = ["RECORD_SCHEMA", "Recent", "SliceHistory", "alerts_topic_text", "build_record",
           "main"]

RECORD_SCHEMA = 1
"""The record layout's version (`AlertRecord.schema_version`)."""
_HEADER = (
    "# The value schema is generated from stream_guard.types.AlertRecord by\n"
    "# `python -m stream_guard.alert.record`: edit the model, then run it.\n"
)


_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
MAX_SERIES = 288  # points of a record's series: a day of 5-minute windows
Recent = tuple[int, float, float | None]
"""One window of a slice's history: its end (epoch ms), the actual value, the expected one."""


@dataclass
class SliceHistory:
    """The last day of windows of the slices a metric may alert on (the platform, open
    episodes and candidates, this window's anomalous slices), so a record can give the numbers
    over the episode so far and its recent series. Bounded: a slice that is none of these is
    dropped, and each keeps `maxlen` windows (a day, 8 at least, 1440 at most). Part of the
    engine's per-metric state (runtime/snapshot.py), so replay and a restarted worker agree."""

    window_ms: int
    series: dict[SliceKey, deque[Recent]] = field(default_factory=dict)

    @property
    def maxlen(self) -> int:
        return min(max(_DAY_MS // self.window_ms, 8), 1440)

    def observe(self, end_ms: int, scores: Iterable[Score], keep: set[SliceKey]) -> None:
        """This window's scores of the slices in `keep`; every other slice is forgotten."""
        for s in scores:
            if s.point.slice in keep:
                recent = self.series.setdefault(s.point.slice, deque(maxlen=self.maxlen))
                recent.append((end_ms, s.point.value, s.expected))
        for key in [k for k in self.series if k not in keep]:
            del self.series[key]

    def recent(self, key: SliceKey) -> list[Recent]:
        return list(self.series.get(key, ()))


def _num(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _so_far(rule: MetricRule, episode: Episode, window_end: int,
            recent: Sequence[Recent]) -> dict[str, object] | None:
    """The episode's windows with a baseline, from its first anomalous one (`for` windows
    before it opened): summed for sum and count metrics, averaged for ratio and mean ones."""
    window_ms = int(rule.window.total_seconds() * 1000)
    since = episode.started_ms - rule.alert.for_windows * window_ms
    kept = [(a, e) for end, a, e in recent if since < end <= window_end and e is not None]
    if not kept:
        return None
    actual, expected = sum(a for a, _ in kept), sum(e for _, e in kept)
    summed = rule.value in ("sum", "count")
    if not summed:
        actual, expected = actual / len(kept), expected / len(kept)
    hours = len(kept) * window_ms / _HOUR_MS
    return {
        "since": iso_utc(since), "windows": len(kept), "duration_s": (window_end - since) / 1000,
        "aggregate": "sum" if summed else "mean", "actual": _num(actual),
        "expected": _num(expected), "gap": _num(actual - expected),
        "gap_per_hour": _num((actual - expected) / hours) if summed else None,
    }


def _series(recent: Sequence[Recent]) -> list[dict[str, object]]:
    return [{"end": iso_utc(end), "actual": _num(a), "expected": _num(e)}
            for end, a, e in recent[-MAX_SERIES:]]


def build_record(
    rule: MetricRule,
    episode: Episode,
    reason: str,
    lead: Score | None,
    window: tuple[int, int],
    firing: list[Score],
    hints: list[RootCauseHint],
    history: SliceHistory | None = None,
) -> AlertRecord:
    """One record per episode update; `lead` is the episode slice's score in this window,
    `history` the metric's up to this window: firing updates carry the episode so far, new
    and escalated ones the slice's series too, and the whole metric's for a slice (charts)."""
    status = "resolved" if reason == "resolved" else "firing"
    recent = history.recent(episode.slice) if history else []
    so_far = None if status == "resolved" else _so_far(rule, episode, window[1], recent)
    charted = history is not None and reason in ("new", "escalated")
    series = _series(recent) if charted else []
    metric_series = _series(history.recent(())) if history and charted and episode.slice else []
    return AlertRecord.model_validate({
        "schema": RECORD_SCHEMA,
        "fingerprint": episode.fingerprint,
        "episode_id": episode.episode_id,
        "sequence": episode.sequence,
        "status": status,
        "reason": str(reason),
        "metric": rule.metric,
        "description": rule.description,
        "rule_version": rule.rule_id,
        "owner": rule.owner,
        "runbook": rule.runbook,
        "dashboard": rule.dashboard,
        "route": rule.alert.route,
        "slice": slice_dict(episode.slice),
        "direction": episode.direction,
        "window_start": iso_utc(window[0]),
        "window_end": iso_utc(window[1]),
        "value": _num(lead.point.value) if lead else None,
        "expected": _num(lead.expected) if lead else None,
        "score": _num(lead.score) if lead else None,
        "severity": episode.severity,
        "started_at": iso_utc(episode.started_ms),
        "peak_score": _num(episode.peak_score),
        "firing_slices": [
            {"slice": slice_dict(s.point.slice), "value": _num(s.point.value),
             "expected": _num(s.expected), "score": _num(s.score)}
            for s in firing[: rule.alert.max_slices]
        ],
        "hints": [h.to_json() for h in hints],
        "unit": rule.unit,
        "so_far": so_far,
        "series": series,
        "metric_series": metric_series,
    })


def alerts_topic_text(path: Path) -> str:
    """The topic file at `path` with `AlertRecord`'s JSON Schema as its value schema (the other
    fields -- partitions, description -- are kept as they are)."""
    spec = read_mapping(path, "a mapping of topic fields")
    spec["schema"] = AlertRecord.model_json_schema()
    return _HEADER + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def main(argv: list[str] | None = None) -> int:
    """Rewrites topics/alerts.yaml from the model (or, with --check, says whether it is stale)."""
    parser = argparse.ArgumentParser(prog="python -m stream_guard.alert.record",
                                     description=main.__doc__)
    parser.add_argument("--topic-file", type=Path, default=default_topics_dir() / "alerts.yaml")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = alerts_topic_text(args.topic_file)
    if args.topic_file.read_text(encoding="utf-8") == text:
        return 0
    if args.check:
        print(f"{args.topic_file}: stale; run python -m stream_guard.alert.record",
              file=sys.stderr)
        return 1
    args.topic_file.write_text(text, encoding="utf-8")
    print(f"wrote {args.topic_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
