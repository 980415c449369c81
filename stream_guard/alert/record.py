"""The alert record: the JSON written to files and to the alerts topic (the record of truth)."""

from __future__ import annotations

from stream_guard.alert.episodes import Episode
from stream_guard.config.rules import MetricRule
from stream_guard.types import AlertRecord, RootCauseHint, Score, iso_utc, slice_dict

__all__ = ["RECORD_SCHEMA", "build_record"]

RECORD_SCHEMA = 1


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
    return {
        "schema": RECORD_SCHEMA,
        "fingerprint": episode.fingerprint,
        "episode_id": episode.episode_id,
        "sequence": episode.sequence,
        "status": status,
        "reason": reason,
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
    }
