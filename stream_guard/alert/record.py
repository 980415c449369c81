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
from pathlib import Path

import yaml

from stream_guard.alert.episodes import Episode
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import default_topics_dir
from stream_guard.config.yamlfile import read_mapping
from stream_guard.types import AlertRecord, RootCauseHint, Score, iso_utc, slice_dict

__all__ = ["RECORD_SCHEMA", "alerts_topic_text", "build_record", "main"]

RECORD_SCHEMA = 1
"""The record layout's version (`AlertRecord.schema_version`)."""
_HEADER = (
    "# The value schema is generated from stream_guard.types.AlertRecord by\n"
    "# `python -m stream_guard.alert.record`: edit the model, then run it.\n"
)


def _num(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def build_record(
    rule: MetricRule,
    episode: Episode,
    reason: str,
    lead: Score | None,
    window: tuple[int, int],
    firing: list[Score],
    hints: list[RootCauseHint],
) -> AlertRecord:
    """One record per episode update; `lead` is the episode slice's score in this window."""
    status = "resolved" if reason == "resolved" else "firing"
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
