"""Opt-in scenarios: the default stream is untouched, and each new incident kind moves what its
label says and nothing it does not."""

from __future__ import annotations

import hashlib
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from stream_guard.simulate import Simulation, SimulationConfig, write_simulation
from stream_guard.simulate.catalog import CATEGORIES, TIERS
from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.scenarios import SCENARIOS
from stream_guard.simulate.tables import Table, slice_mask

HOUR = 3_600_000
# sha256 of events.jsonl + labels.json of the default 2-day run (seed 7, scale 0.01), taken
# before the scenarios existed: benchmarks and tests read the default stream.
DEFAULT_DUMP = "166fd2ca6aa2d6facb7563648ace1e8374c00de31d60e69adcc003ac3e6874a2"


@pytest.fixture(scope="module")
def extended() -> Simulation:
    return Simulation(SimulationConfig(days=7, seed=5, scale=0.3, invalid_fraction=0.0,
                                       scenario="extended"))


def _only(sim: Simulation, kind: str, metric: str | None = None) -> Incident:
    (incident,) = [i for i in sim.incidents
                   if i.kind == kind and (metric is None or i.metric == metric)]
    return incident


def _rate(numerator: np.ndarray, denominator: np.ndarray) -> float:
    """Events of the numerator mask per event of the denominator mask."""
    return float(numerator.sum() / max(1, denominator.sum()))


def test_the_default_dump_is_byte_identical(tmp_path: Path) -> None:
    write_simulation(tmp_path, days=2, seed=7, scale=0.01)
    digest = hashlib.sha256()
    for name in ("events.jsonl", "labels.json"):
        digest.update((tmp_path / name).read_bytes())
    assert digest.hexdigest() == DEFAULT_DUMP


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        SimulationConfig(days=2, seed=1, scenario="nope")


def test_extended_labels_every_new_kind_and_keeps_incidents_apart(extended: Simulation) -> None:
    labels = extended.labels()
    assert labels["scenario"] == "extended" and "normal" not in labels
    kinds = [(i["kind"], i["metric"]) for i in labels["incidents"]]
    assert sorted(kinds) == sorted([
        ("element_outage", "gmv"), ("element_complaints", "complaint_rate"),
        ("seller_flood", "violation_rate"), ("mix_shift", "complaint_rate"),
        ("mix_shift", "gmv"), ("enforcement_outage", "violation_rate"),
        ("intake_outage", "complaint_rate"), ("complaint_creep", "complaint_rate")])
    for label in labels["incidents"]:
        assert {"kind", "effect", "shape", "sellers"} <= set(label)
        up = label["direction"] == "up"
        assert (label["magnitude"] > 1) if up else (0 < label["magnitude"] < 1)
    assert len(_only(extended, "element_outage").slice) == 3
    assert len(_only(extended, "element_complaints").slice) == 2
    end = extended.config.end_ms - 2 * HOUR
    for metric in {i.metric for i in extended.incidents}:
        same = sorted((i for i in extended.incidents if i.metric == metric),
                      key=lambda i: i.start_ms)
        assert all(i.start_ms >= extended.config.start_ms + 36 * HOUR and i.end_ms <= end
                   for i in same)
        assert all(b.start_ms - a.end_ms >= 12 * HOUR for a, b in pairwise(same))


def test_short_runs_leave_out_what_does_not_fit() -> None:
    sim = Simulation(SimulationConfig(days=3, seed=5, scale=0.01, scenario="extended"))
    assert [i.kind for i in sim.incidents] == ["element_outage", "element_complaints",
                                               "seller_flood", "mix_shift", "mix_shift"]


def test_element_outage_thins_the_element_only(extended: Simulation) -> None:
    inc = _only(extended, "element_outage")
    orders = extended.tables["orders"]
    during = orders.window(inc.start_ms, inc.end_ms)
    before = orders.window(inc.start_ms - 24 * HOUR, inc.end_ms - 24 * HOUR)
    element = slice_mask(orders, inc.slice)
    sibling = slice_mask(orders, tuple(kv for kv in inc.slice if kv[0] != "payment_method"))
    sibling &= ~element  # same region and category, other payment methods
    ratio = (element & during).sum() / (element & before).sum()
    assert ratio == pytest.approx(inc.magnitude, abs=0.1)
    assert (sibling & during).sum() / (sibling & before).sum() == pytest.approx(1.0, abs=0.15)


def test_seller_flood_is_carried_by_three_sellers_of_one_category(extended: Simulation) -> None:
    inc = _only(extended, "seller_flood")
    violations = extended.tables["violations"]
    in_slice = slice_mask(violations, inc.slice) & violations.window(inc.start_ms, inc.end_ms)
    theirs = in_slice & np.isin(violations["seller"], inc.sellers)
    assert len(inc.sellers) == 3 and theirs.sum() > 0.6 * in_slice.sum()
    rows = violations["seller"][theirs]
    regions = {int(violations["region"][theirs][rows == s][0]) for s in inc.sellers}
    categories = set(violations["category"][theirs].tolist())
    assert len(regions) == 3 and categories == {CATEGORIES.index(dict(inc.slice)["category"])}
    label = next(x for x in extended.labels()["incidents"] if x["id"] == inc.id)
    assert label["sellers"] == [f"s-{s:06d}" for s in inc.sellers]


def test_mix_shift_moves_the_mix_not_the_rates(extended: Simulation) -> None:
    inc = _only(extended, "mix_shift", "complaint_rate")
    orders, complaints = extended.tables["orders"], extended.tables["complaints"]
    tier = TIERS.index(dict(inc.slice)["seller_tier"])
    spans = {"during": (inc.start_ms, inc.end_ms),
             "before": (inc.start_ms - 24 * HOUR, inc.end_ms - 24 * HOUR)}
    share, rates, overall = {}, {}, {}
    for name, (a, b) in spans.items():
        o, c = orders.window(a, b), complaints.window(a, b)
        share[name] = (o & (orders["seller_tier"] == tier)).sum() / o.sum()
        overall[name] = c.sum() / o.sum()
        rates[name] = [_rate(c & (complaints["seller_tier"] == t), o & (orders["seller_tier"] == t))
                       for t in range(len(TIERS))]
    assert share["during"] > 2 * share["before"]
    assert overall["during"] > 1.15 * overall["before"]
    for during, before in zip(rates["during"], rates["before"], strict=True):
        assert during == pytest.approx(before, rel=0.25)


@pytest.mark.parametrize(("kind", "topic", "denominator"), [
    ("enforcement_outage", "violations", "listings"),
    ("intake_outage", "complaints", "orders"),
])
def test_rate_drops_lower_the_platform_rate(
    extended: Simulation, kind: str, topic: str, denominator: str
) -> None:
    inc = _only(extended, kind)
    num, den = extended.tables[topic], extended.tables[denominator]

    def rate(shift: int) -> float:
        a, b = inc.start_ms - shift, inc.end_ms - shift
        return float(num.window(a, b).sum() / den.window(a, b).sum())

    assert inc.direction == "down" and inc.slice == ()
    assert rate(0) / rate(24 * HOUR) == pytest.approx(inc.magnitude, abs=0.12)


def test_creep_rises_slowly_to_its_magnitude(extended: Simulation) -> None:
    inc = _only(extended, "complaint_creep")
    orders, complaints = extended.tables["orders"], extended.tables["complaints"]
    quarter = (inc.end_ms - inc.start_ms) // 4

    def rate(a: int, b: int) -> float:
        return _rate(slice_mask(complaints, inc.slice) & complaints.window(a, b),
                     slice_mask(orders, inc.slice) & orders.window(a, b))

    usual = rate(inc.start_ms - 24 * HOUR, inc.start_ms)
    first = rate(inc.start_ms, inc.start_ms + quarter) / usual
    last = rate(inc.end_ms - quarter, inc.end_ms) / usual
    assert 1.0 < first < 1 + (inc.magnitude - 1) / 2 < last
    assert last == pytest.approx(1 + (inc.magnitude - 1) * 7 / 8, rel=0.2)


def test_weekly_shape_lowers_and_delays_the_weekend() -> None:
    def orders(scenario: str) -> Table:
        return Simulation(SimulationConfig(days=7, seed=2, scale=0.05, invalid_fraction=0.0,
                                           scenario=scenario)).tables["orders"]

    base, weekly = orders("default"), orders("weekly")
    start = SimulationConfig(days=1, seed=0).start_ms
    weekday, saturday = (start + d * 24 * HOUR for d in (2, 5))

    def day(t: Table, at: int) -> np.ndarray:
        mask = t.window(at, at + 24 * HOUR)
        return np.bincount((t.ts_ms[mask] - at) // HOUR, minlength=24)

    ratio = day(weekly, saturday).sum() / day(base, saturday).sum()
    assert ratio == pytest.approx(0.75 / 1.12, abs=0.05)
    assert day(weekly, weekday).sum() == pytest.approx(day(base, weekday).sum(), rel=0.05)
    assert int(day(weekly, saturday).argmax()) > int(day(base, saturday).argmax())
    labels = Simulation(SimulationConfig(days=2, seed=2, scale=0.01,
                                         scenario="weekly")).labels()
    assert labels["normal"][0]["kind"] == "weekly_shape"
    assert set(SCENARIOS) == {"default", "rca", "drops", "creep", "weekly", "extended", "ratios"}


def test_an_order_flood_adds_orders_nobody_complains_about() -> None:
    """Scenario `ratios`: an order flood (effect `bots`) multiplies its slice's orders and
    leaves its complaints at their count, so complaint_rate falls with no complaint lost."""
    sim = Simulation(SimulationConfig(days=7, seed=3, scale=0.3, invalid_fraction=0.0,
                                      scenario="ratios"))
    kinds = [i.kind for i in sim.incidents]
    assert kinds.count("intake_outage") == kinds.count("enforcement_outage") == 2
    flood = next(i for i in sim.incidents if i.kind == "order_flood")
    assert flood.metric == "gmv" and flood.direction == "up" and flood.effect == "bots"
    orders, complaints = sim.tables["orders"], sim.tables["complaints"]

    def counts(shift: int) -> tuple[int, int]:
        a, b = flood.start_ms - shift, flood.end_ms - shift
        in_slice = slice_mask(orders, flood.slice) & orders.window(a, b)
        return int(in_slice.sum()), int(np.isin(complaints["order"],
                                                np.flatnonzero(in_slice)).sum())

    (o_during, c_during), (o_before, c_before) = counts(0), counts(24 * HOUR)
    assert o_during / o_before == pytest.approx(flood.magnitude, rel=0.15)
    assert c_during / c_before == pytest.approx(1.0, abs=0.3)
