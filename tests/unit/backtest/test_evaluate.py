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


def _first_record(inc: Incident, hints: list[dict[str, object]]) -> AlertRecord:
    """An episode of `inc`'s metric opened in its second window, with `hints`."""
    base = _alert(inc.metric, f"episode of {inc.id}", inc.start_ms + 15 * MIN, inc.slice)
    return AlertRecord.parse({**base.to_dict(), "hints": hints})


def _slice_hint(where: dict[str, str], effect: str = "level") -> dict[str, object]:
    return {"kind": "slice", "summary": "", "slice": where, "share": 0.9, "effect": effect}


def _sellers_hint(*sellers: str) -> dict[str, object]:
    return {"kind": "sellers", "summary": "", "field": "seller_id", "share": 0.8,
            "sellers": [{"seller": s, "change": 10.0} for s in sellers]}


def test_the_top_1_root_cause_of_each_detected_incident() -> None:
    element = {"region": "EU", "category": "beauty", "payment_method": "card"}
    incidents = [
        Incident("element", "gmv", element, "down", 60 * MIN, 120 * MIN, "external"),
        Incident("parent", "gmv", element, "down", 600 * MIN, 660 * MIN, "external"),
        Incident("sellers", "gmv", {"category": "toys"}, "up", 1200 * MIN, 1260 * MIN,
                 "external", effect="sellers", sellers=("s-1", "s-2", "s-3")),
        Incident("wrong seller", "gmv", {"category": "toys"}, "up", 1800 * MIN, 1860 * MIN,
                 "external", effect="sellers", sellers=("s-1", "s-2", "s-3")),
        Incident("missed", "gmv", {}, "down", 2400 * MIN, 2460 * MIN, "external"),
    ]
    hints = [
        [_slice_hint(element)],
        [_slice_hint({"region": "EU"})],
        [_slice_hint({"category": "toys"}), _sellers_hint("s-2", "s-1")],
        [_sellers_hint("s-1", "s-9")],
    ]  # the last incident is missed: no episode
    alerts = [_first_record(inc, h) for inc, h in zip(incidents, hints, strict=False)]
    ev = evaluate(alerts, incidents, WINDOWS)
    assert {k: v.hit for k, v in ev.rca.items()} == {
        "element": True, "parent": False, "sellers": True, "wrong seller": False}
    assert ev.rca["element"].named == "category=beauty, payment_method=card, region=EU (level)"
    assert ev.rca["sellers"].named == "sellers s-2, s-1"
    assert ev.total.as_row()["rca_top1"] == 0.5  # of the 4 detected
