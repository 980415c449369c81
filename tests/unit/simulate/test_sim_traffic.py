"""Normal traffic has the intended shape, and labelled incidents are visible in the data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from stream_guard.simulate import Incident, Simulation

Frames = dict[str, dict[str, np.ndarray]]
HOUR, DAY = 3_600_000, 86_400_000
START = 1_772_409_600_000  # 2026-03-02T00:00:00Z, a Monday


def _hour_of_day(ts: np.ndarray) -> np.ndarray:
    return np.asarray((ts % DAY) // HOUR)


def test_orders_follow_a_smooth_daily_cycle(week_frames: Frames) -> None:
    per_hour = np.bincount(_hour_of_day(week_frames["orders"]["ts_ms"]), minlength=24)
    night, evening = per_hour[3:6].sum(), per_hour[19:22].sum()
    assert 0.2 < night / evening < 0.4
    assert int(per_hour.argmin()) in (3, 4, 5) and int(per_hour.argmax()) in (18, 19, 20, 21)
    steps = np.abs(np.diff(np.append(per_hour, per_hour[0]))) / per_hour.max()
    assert steps.max() < 0.2  # smooth: no hour jumps by a fifth of the peak


def test_weekends_bring_more_orders(week_frames: Frames) -> None:
    day = (week_frames["orders"]["ts_ms"] - START) // DAY
    per_day = np.bincount(day, minlength=7)
    assert 1.05 < per_day[5:].mean() / per_day[:5].mean() < 1.2


def test_volumes_and_base_rates_match_the_brief(week_sim: Simulation, week_frames: Frames) -> None:
    per_day = {t: n / 7 / week_sim.config.scale for t, n in week_sim.counts.items()}
    assert 100_000 < per_day["orders"] < 125_000
    assert 36_000 < per_day["listings"] < 44_000
    assert 2_400 < per_day["seller_onboarding"] < 3_300
    assert 0.015 < week_sim.counts["complaints"] / week_sim.counts["orders"] < 0.025
    assert 0.022 < week_sim.counts["violations"] / week_sim.counts["listings"] < 0.04


def test_dimension_mixes_are_skewed_with_small_slices(week_frames: Frames) -> None:
    orders = week_frames["orders"]
    share = {c: float(np.mean(orders["category"] == c)) for c in set(orders["category"])}
    assert len(share) == 10 and 0.005 < share["collectibles"] < 0.02
    regions = {r: float(np.mean(orders["region"] == r)) for r in ("NA", "MEA")}
    assert regions["NA"] > 0.3 and regions["MEA"] < 0.08
    cod = orders["payment_method"] == "cod"
    assert 0 < cod.mean() < 0.05 and np.isin(orders["region"][cod], ["MEA", "APAC", "LATAM"]).all()
    gmv = orders["gmv"].astype(float)
    assert gmv[orders["category"] == "electronics"].mean() > 2 * gmv.mean() / 1.5
    assert gmv.min() >= 0


def _metric(frames: Frames, incident: Incident, start: int, end: int) -> float:
    """The incident's metric in its slice over [start, end), computed from the events."""

    def rows(topic: str) -> np.ndarray:
        f = frames[topic]
        mask = (f["ts_ms"] >= start) & (f["ts_ms"] < end)
        for dim, value in incident.slice:
            mask &= f[dim] == value
        return np.asarray(mask)

    if incident.metric == "gmv":
        return float(frames["orders"]["gmv"][rows("orders")].astype(float).sum())
    if incident.metric == "orders":  # not a labelled metric: the order count, for checks
        return float(rows("orders").sum())
    if incident.metric == "complaint_rate":
        return rows("complaints").sum() / rows("orders").sum()
    if incident.metric == "violation_rate":
        return rows("violations").sum() / rows("listings").sum()
    onboarding = frames["seller_onboarding"]
    picked = rows("seller_onboarding")
    return (
        onboarding["flagged_bad"][picked].sum()
        / (onboarding["decision"][picked] == "approved").sum()
    )


def _reference(frames: Frames, sim: Simulation, incident: Incident) -> float:
    """The same hours on other days without an incident on that metric: what normal looks like."""
    values = []
    for days in (-3, -2, -1, 1, 2, 3):
        start, end = incident.start_ms + days * DAY, incident.end_ms + days * DAY
        inside = sim.config.start_ms <= start and end <= sim.config.end_ms
        clash = any(
            i.metric == incident.metric and i.start_ms < end and start < i.end_ms
            for i in sim.incidents
        )
        if inside and not clash:
            values.append(_metric(frames, incident, start, end))
    assert values, incident
    return float(np.mean(values))


def test_every_incident_moves_its_metric_in_its_slice(
    week_sim: Simulation, week_frames: Frames
) -> None:
    for incident in week_sim.incidents:
        during = _metric(week_frames, incident, incident.start_ms, incident.end_ms)
        ratio = during / _reference(week_frames, week_sim, incident)
        # A third of the full effect: a bar that small slices' Poisson noise cannot fake or hide.
        if incident.direction == "down":
            assert ratio < 1 - (1 - incident.magnitude) / 3, (incident, ratio)
        else:
            assert ratio > 1 + (incident.magnitude - 1) / 3, (incident, ratio)


def test_orders_are_back_to_normal_after_a_gmv_incident(
    week_sim: Simulation, week_frames: Frames
) -> None:
    for incident in week_sim.incidents:
        start, end = incident.end_ms + HOUR, incident.end_ms + 5 * HOUR
        if incident.metric != "gmv" or end > week_sim.config.end_ms:
            continue
        window = replace(incident, metric="orders", start_ms=start, end_ms=end)
        after = _metric(week_frames, window, start, end)
        assert after / _reference(week_frames, week_sim, window) == pytest.approx(1, abs=0.2)
