"""Incident labels: well-formed, spread by the rules, detectable, and linked to their cause."""

from __future__ import annotations

from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pytest

from stream_guard.simulate import Simulation
from stream_guard.simulate.catalog import (
    ONBOARDING_REGION_MIX,
    PAYMENT_MIX,
    PAYMENTS,
    REGION_MIX,
    REGIONS,
    complaint_share,
    gmv_share,
    violation_share,
)
from stream_guard.simulate.governance import attach_actions
from stream_guard.simulate.incidents import METRICS, Incident, plan_incidents

HOUR = 3_600_000
START = 1_772_409_600_000
DIMENSIONS = {
    "gmv": {"region", "category", "seller_tier", "payment_method", "channel"},
    "complaint_rate": {"region", "category", "seller_tier"},
    "violation_rate": {"region", "category", "seller_tier"},
    "bad_seller_onboarding_rate": {"region", "category"},
}


def _plan(days: int, seed: int) -> list[Incident]:
    return plan_incidents(START, days, np.random.default_rng(seed))


def test_labels_are_well_formed(week_sim: Simulation) -> None:
    labels = week_sim.labels()
    assert (labels["seed"], labels["start"], labels["end"]) == (
        11,
        "2026-03-02T00:00:00Z",
        "2026-03-09T00:00:00Z",
    )
    keys = ["id", "metric", "slice", "direction", "start", "end", "magnitude", "cause",
            "action_id", "description"]  # fmt: skip
    ids = [i["id"] for i in labels["incidents"]]
    assert ids == [f"inc-{n:02d}" for n in range(1, len(ids) + 1)]
    for label in labels["incidents"]:
        assert list(label) == keys
        assert label["start"].endswith("Z") and label["end"].endswith("Z")
        start, end = (datetime.fromisoformat(label[k]) for k in ("start", "end"))
        assert start < end
        assert label["metric"] in METRICS and label["description"]
        assert 1 <= len(label["slice"]) <= 2 or label["slice"] == {}
        assert set(label["slice"]) <= DIMENSIONS[label["metric"]]
        if len(label["slice"]) == 2:
            assert set(label["slice"]) == {"region", "payment_method"}
        up = label["direction"] == "up"
        assert (label["magnitude"] > 1) if up else (0 < label["magnitude"] < 1)
        assert (label["cause"] == "intervention") == (label["action_id"] is not None)


@pytest.mark.parametrize("seed", range(8))
def test_a_week_has_every_kind_of_incident(seed: int) -> None:
    plan = _plan(7, seed)
    assert len(plan) >= 12
    assert {i.metric for i in plan} == set(METRICS)
    gmv = [i for i in plan if i.metric == "gmv"]
    assert {i.direction for i in gmv} == {"up", "down"}
    assert {i.kind for i in gmv} >= {"payment_outage", "category_drop", "platform_drop"}
    assert any(i.cause == "intervention" and i.metric == "violation_rate" for i in plan)


@pytest.mark.parametrize(("days", "seed"), [(d, s) for d in (2, 3, 7, 14) for s in range(4)])
def test_incidents_respect_warmup_spacing_and_durations(days: int, seed: int) -> None:
    plan = _plan(days, seed)
    end = START + days * 24 * HOUR
    for i in plan:
        assert i.start_ms >= START + 36 * HOUR and i.end_ms <= end - 2 * HOUR
        hours = (i.end_ms - i.start_ms) / HOUR
        low, high = (6, 18) if i.metric == "bad_seller_onboarding_rate" else (1, 4)
        assert low <= hours <= high
    for metric in METRICS:
        same = sorted((i for i in plan if i.metric == metric), key=lambda i: i.start_ms)
        for before, after in pairwise(same):
            assert after.start_ms - before.end_ms >= 12 * HOUR


def test_short_runs_have_proportionally_fewer_incidents() -> None:
    counts = [len(_plan(days, seed=1)) for days in (1, 2, 3, 7, 14)]
    assert counts[:2] == [0, 1] and counts == sorted(counts) and counts[-1] > 2 * counts[2]


def _volume_share(incident: Incident) -> float:
    key = dict(incident.slice)
    if not key:
        return 1.0
    if incident.metric == "gmv" and len(key) == 2:
        r, p = REGIONS.index(key["region"]), PAYMENTS.index(key["payment_method"])
        return REGION_MIX[r] * PAYMENT_MIX[r][p]
    ((dim, value),) = key.items()
    if incident.metric == "bad_seller_onboarding_rate":
        return ONBOARDING_REGION_MIX[REGIONS.index(value)]
    share = {"gmv": gmv_share, "complaint_rate": complaint_share, "violation_rate": violation_share}
    return share[incident.metric](dim)[value]


@pytest.mark.parametrize("seed", range(8))
def test_incident_slices_carry_enough_volume_and_vary_with_the_seed(seed: int) -> None:
    plan = _plan(14, seed)
    assert all(_volume_share(i) >= 0.05 - 1e-9 for i in plan)
    assert len({i.slice for i in plan}) > len(plan) // 2


def test_intervention_is_announced_by_its_rule_launch_just_before(small_sim: Simulation) -> None:
    actions = {
        r["value"]["action_id"]: r["value"]
        for r in small_sim.records()
        if r["topic"] == "governance_actions"
    }
    caused = [i for i in small_sim.incidents if i.cause == "intervention"]
    assert caused  # three days are enough for the intervention
    for incident in caused:
        action: dict[str, Any] = actions[incident.action_id or ""]
        assert action["kind"] == "rule_launch" and action["scope"] == dict(incident.slice)
        ts = action["ts"] if isinstance(action["ts"], int) else _ms(action["ts"])
        assert 2 * 60_000 <= incident.start_ms - ts <= 10 * 60_000


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


@pytest.mark.parametrize("seed", range(4))
def test_benign_actions_stay_clear_of_incidents(seed: int) -> None:
    rng = np.random.default_rng(seed)
    incidents, actions = attach_actions(plan_incidents(START, 7, rng), START, 7, rng)
    launches = {i.action_id for i in incidents}
    benign = [a for a in actions if a.action_id not in launches]
    assert len(benign) >= 7  # a few a day
    for action in benign:
        assert action.kind != "rule_launch"
        for i in incidents:
            assert not i.start_ms - 6 * HOUR <= action.ts_ms < i.end_ms + 2 * HOUR
