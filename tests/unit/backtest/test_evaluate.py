"""Matching alert episodes to labelled incidents: strict on metric and time; delays, two units."""

from __future__ import annotations

from typing import Any

from stream_guard.backtest.evaluate import Incident, evaluate
from stream_guard.types import iso_utc

MIN = 60_000
WINDOWS = {"gmv": 15 * MIN, "complaint_rate": 30 * MIN}


def _alert(metric: str, episode: str, start_ms: int, top: dict[str, str]) -> dict[str, Any]:
    return {"episode_id": episode, "metric": metric, "slice": top,
            "window_start": iso_utc(start_ms), "window_end": iso_utc(start_ms + WINDOWS[metric]),
            "hints": [{"kind": "slice", "slice": top, "summary": ""}]}


def test_only_an_overlapping_episode_of_the_same_metric_is_a_true_positive() -> None:
    incident = Incident("inc-01", "gmv", {"region": "EU"}, "down", 60 * MIN, 120 * MIN, "external")
    alerts = [
        _alert("gmv", "early", 0, {"region": "EU"}),  # ends before the incident starts
        _alert("complaint_rate", "other", 60 * MIN, {"region": "EU"}),  # another metric
        _alert("gmv", "hit", 75 * MIN, {"region": "EU"}),
    ]
    ev = evaluate(alerts, [incident], WINDOWS)  # type: ignore[arg-type]
    assert ev.matches["inc-01"] == ["hit"]
    assert {e.episode_id for e in ev.false_episodes} == {"early", "other"}
    gmv = ev.by_metric["gmv"]
    assert (gmv.precision, gmv.recall, gmv.top_hint_rate) == (0.5, 1.0, 1.0)
    assert gmv.delays == [2.0] and gmv.delays_minutes == [30.0]  # window 75-90 min ends 30 min in


def test_an_episode_long_after_the_incident_does_not_count() -> None:
    incident = Incident("inc-01", "gmv", {}, "down", 0, 60 * MIN, "external")
    late = 60 * MIN + 2 * WINDOWS["gmv"]  # starts past the two windows of tolerance
    ev = evaluate([_alert("gmv", "late", late, {})], [incident], WINDOWS)  # type: ignore[list-item]
    assert ev.matches["inc-01"] == [] and ev.total.recall == 0.0
