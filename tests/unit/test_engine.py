"""The engine end to end on a small, controlled stream: one explained episode per problem."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.codec import Codec
from stream_guard.types import AlertRecord, iso_utc
from tests.conftest import T0, order

MIN = 60_000
REGIONS = ["EU", "NA", "APAC", "LATAM"]


def _orders(days: int, outage: tuple[int, int] | None, seed: int = 7) -> list[dict[str, Any]]:
    """Orders with a daily cycle; during `outage` (ms range) EU orders stop."""
    rng = np.random.default_rng(seed)
    events = []
    for minute in range(days * 1440):
        ts = T0 + minute * MIN
        rate = 30 * (1.0 + 0.6 * math.sin(2 * math.pi * minute / 1440))
        for j in range(rng.poisson(rate)):
            region = REGIONS[rng.integers(0, 4)]
            if outage and outage[0] <= ts < outage[1] and region == "EU":
                continue
            events.append(order(ts + j, len(events), region=region, gmv=float(rng.uniform(10, 30))))
    return events


def _run(
    rules: list[MetricRule],
    codec: Codec,
    events: list[dict[str, Any]],
    actions: list[dict[str, Any]] = (),
) -> tuple[Replayer, list[AlertRecord]]:
    gmv = [r for r in rules if r.metric == "gmv"]
    engine = Replayer(gmv, codec, partitions={"orders": 1})
    alerts: list[AlertRecord] = []
    pending = sorted(actions, key=lambda a: a["ts"])
    for i, e in enumerate(events):
        while pending and pending[0]["ts"] <= e["ts"]:  # in event-time order, as a dump is
            engine.ingest("governance_actions", None, pending.pop(0), "test")
        engine.ingest("orders", None, e, f"orders.jsonl:{i}")
        if i % 500 == 0:
            alerts += engine.advance()
    alerts += engine.advance(final=True)
    return engine, alerts


def test_quiet_days_raise_no_alert_and_an_outage_raises_one_explained_episode(
    rules: list[MetricRule], codec: Codec
) -> None:
    start = T0 + 2 * 86400_000 + 14 * 3600_000
    _, quiet = _run(rules, codec, _orders(3, None))
    assert quiet == []
    action = {
        "event_id": "g1",
        "ts": iso_utc(start - 10 * MIN),
        "action_id": "act-1",
        "kind": "takedown",
        "scope": {"region": "EU"},
        "description": "<!channel> bulk",
    }
    _, alerts = _run(rules, codec, _orders(3, (start, start + 2 * 3600_000)), [action])
    assert len({a["episode_id"] for a in alerts}) == 1
    assert alerts[0]["reason"] == "new" and alerts[-1]["status"] == "resolved"
    new = alerts[0]
    assert new["metric"] == "gmv" and new["direction"] == "down"
    slice_hint = next(h for h in new["hints"] if h["kind"] == "slice")
    assert slice_hint["slice"] == {"region": "EU"} and slice_hint["share"] > 0.5
    intervention = next(h for h in new["hints"] if h["kind"] == "intervention")
    assert intervention["action_id"] == "act-1"
    assert start <= _ms(new["window_end"]) <= start + 2 * 15 * MIN  # detected within 2 windows


def test_replaying_twice_gives_identical_alerts(rules: list[MetricRule], codec: Codec) -> None:
    start = T0 + 2 * 86400_000 + 9 * 3600_000
    events = _orders(3, (start, start + 3600_000))
    assert _run(rules, codec, events)[1] == _run(rules, codec, events)[1]


def test_bad_events_are_dead_lettered_and_good_ones_all_counted(
    rules: list[MetricRule], codec: Codec
) -> None:
    dead = []
    engine = Replayer(rules, codec, on_dead_letter=dead.append)
    engine.ingest("orders", None, order(T0, 1), "f:1")
    engine.ingest("orders", None, b"{broken", "f:2")
    engine.ingest("orders", None, order(T0, 3, gmv=-2), "f:3")
    engine.ingest("orders", None, [order(T0, 4), order(T0, 5)], "f:4")  # no event
    engine.ingest("orders", None, order(T0, 6), "f:6")
    assert engine.stats.events["orders"] == 2
    assert [(d.origin, d.reason) for d in dead] == [
        ("f:2", "bad_json"),
        ("f:3", "out_of_range"),
        ("f:4", "not_an_object"),
    ]
    assert dict(engine.stats.invalid) == {
        ("orders", "bad_json"): 1,
        ("orders", "out_of_range"): 1,
        ("orders", "not_an_object"): 1,
    }


def _ms(iso: str) -> int:
    from datetime import datetime

    return round(datetime.fromisoformat(iso).timestamp() * 1000)
