"""Matching alert episodes to labelled incidents: strict on metric and time; delays, two units."""

from __future__ import annotations

import json
from pathlib import Path

from stream_guard.backtest.evaluate import Incident, evaluate
from stream_guard.types import AlertRecord, iso_utc

MIN = 60_000
WINDOWS = {"gmv": 15 * MIN, "complaint_rate": 30 * MIN}
FIRST = Path(__file__).parents[1] / "alert" / "fixtures" / "gmv_episode.jsonl"


def _alert(metric: str, episode: str, start_ms: int, top: dict[str, str]) -> AlertRecord:
    """The first record of an episode whose top slice hint names `top`."""
    base = json.loads(FIRST.read_text().splitlines()[0])
    hint = {"kind": "slice", "summary": "", "slice": top, "share": 1.0, "effect": "level"}
    return AlertRecord.parse({
        **base, "episode_id": episode, "metric": metric, "slice": top,
        "window_start": iso_utc(start_ms), "window_end": iso_utc(start_ms + WINDOWS[metric]),
        "hints": [hint],
    })


def test_only_an_overlapping_episode_of_the_same_metric_is_a_true_positive() -> None:
    incident = Incident("inc-01", "gmv", {"region": "EU"}, "down", 60 * MIN, 120 * MIN, "external")
    alerts = [
        _alert("gmv", "early", 0, {"region": "EU"}),  # ends before the incident starts
        _alert("complaint_rate", "other", 60 * MIN, {"region": "EU"}),  # another metric
        _alert("gmv", "hit", 75 * MIN, {"region": "EU"}),
    ]
    ev = evaluate(alerts, [incident], WINDOWS)
    assert ev.matches["inc-01"] == ["hit"]
    assert {e.episode_id for e in ev.false_episodes} == {"early", "other"}
    gmv = ev.by_metric["gmv"]
    assert (gmv.precision, gmv.recall, gmv.top_hint_rate) == (0.5, 1.0, 1.0)
    assert gmv.delays == [2.0] and gmv.delays_minutes == [30.0]  # window 75-90 min ends 30 min in


def test_an_episode_long_after_the_incident_does_not_count() -> None:
    incident = Incident("inc-01", "gmv", {}, "down", 0, 60 * MIN, "external")
    late = 60 * MIN + 2 * WINDOWS["gmv"]  # starts past the two windows of tolerance
    ev = evaluate([_alert("gmv", "late", late, {})], [incident], WINDOWS)
    assert ev.matches["inc-01"] == [] and ev.total.recall == 0.0


def test_records_read_as_json_are_evaluated_alike() -> None:
    """The demo reads the alerts topic as JSON objects: they score as the records do."""
    incident = Incident("inc-01", "gmv", {"region": "EU"}, "down", 60 * MIN, 120 * MIN, "external")
    alerts = [_alert("gmv", "hit", 75 * MIN, {"region": "EU"})]
    as_json = [a.to_dict() for a in alerts]
    assert evaluate(as_json, [incident], WINDOWS).episodes == (
        evaluate(alerts, [incident], WINDOWS).episodes)
