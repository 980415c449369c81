"""Rate vs mix for ratio metrics: a pure mix shift names the slice the volume moved to, in
every window of a shift that lasts hours; a pure rate change inside a slice names that slice
as a level change and no mix."""

from __future__ import annotations

import numpy as np
import pytest

from stream_guard.explain.slices import (
    MixTable,
    attribute,
    blend_mix,
    mix_shift,
    slice_hints,
)
from stream_guard.types import Direction, MetricPoint, RootCauseHint, Score, SliceKey, slice_key

TIERS = ("gold", "silver", "bronze", "new")
RATES = (0.012, 0.018, 0.024, 0.048)  # complaints per order: new sellers draw 4x gold's
USUAL = (0.30, 0.35, 0.25, 0.10)  # order mix
SHIFTED = (0.25, 0.29, 0.21, 0.25)  # new-tier orders x3 (a promotion), the others thinned
ORDERS = 2300.0  # per 30-minute window
HOURS_6 = 12  # windows


def tier(name: str) -> SliceKey:
    return slice_key({"seller_tier": name})


def window(mix: tuple[float, ...], rates: tuple[float, ...] = RATES,
           rng: np.random.Generator | None = None) -> MixTable:
    """(complaints, orders) per tier; exact expectations, or Poisson draws given `rng`."""
    table = {}
    for name, share, rate in zip(TIERS, mix, rates, strict=True):
        orders = ORDERS * share if rng is None else float(rng.poisson(ORDERS * share))
        complaints = orders * rate if rng is None else float(rng.poisson(orders * rate))
        table[tier(name)] = (complaints, orders)
    return table


def named(hints: list[RootCauseHint]) -> list[dict[str, str]]:
    return [h.details["slice"] for h in hints]


def run(windows: list[MixTable], slow: bool) -> list[list[dict[str, str]]]:
    """mix_shift on each window against a blended baseline (slow) or the previous window."""
    baseline: MixTable = {}
    out = []
    for current in windows:
        if baseline:
            out.append(named(mix_shift(baseline, current, "up")))
        baseline = blend_mix(baseline, current) if slow else current
    return out


def test_a_six_hour_mix_shift_is_named_in_every_window() -> None:
    windows = [window(USUAL)] * 96 + [window(SHIFTED)] * HOURS_6
    during = run(windows, slow=True)[-HOURS_6:]
    assert during == [[{"seller_tier": "new"}]] * HOURS_6
    # What the engine did (baseline = the previous window): only the shift's first window
    # could name it, and an episode opens a window or more after the shift began.
    previous = run(windows, slow=False)[-HOURS_6:]
    assert previous[0] == [{"seller_tier": "new"}] and previous[1:] == [[]] * (HOURS_6 - 1)


def test_the_mix_shift_survives_counting_noise() -> None:
    rng = np.random.default_rng(13)
    windows = [window(USUAL, rng=rng) for _ in range(96)]
    windows += [window(SHIFTED, rng=rng) for _ in range(HOURS_6)]
    during = run(windows, slow=True)[-HOURS_6:]
    assert all(names[:1] == [{"seller_tier": "new"}] for names in during)
    before = run(windows[:96], slow=True)[48:]
    assert not any(before)  # no mix named while nothing shifted


def test_a_pure_rate_change_names_no_mix() -> None:
    tripled = (*RATES[:3], 3 * RATES[3])
    windows = [window(USUAL)] * 96 + [window(USUAL, tripled)] * HOURS_6
    assert run(windows, slow=True)[-HOURS_6:] == [[]] * HOURS_6


def score(labels: dict[str, str], complaints: float, orders: float, expected: float) -> Score:
    point = MetricPoint("complaint_rate", slice_key(labels), 0, 1, complaints / orders,
                        complaints, orders)
    anomalous = complaints > 1.5 * orders * expected  # a stand-in for the rate test
    return Score(point, 9.0 if anomalous else 1.0, expected, anomalous,
                 "up" if complaints >= orders * expected else "down")


def scores(table: MixTable) -> list[Score]:
    """The platform's and each tier's score, expected = the usual rates."""
    usual_rate = sum(s * r for s, r in zip(USUAL, RATES, strict=True))
    complaints = sum(n for n, _ in table.values())
    orders = sum(d for _, d in table.values())
    out = [Score(MetricPoint("complaint_rate", (), 0, 1, complaints / orders, complaints,
                             orders), 9.0, usual_rate, True, "up")]
    out += [score(dict(key), n, d, RATES[TIERS.index(dict(key)["seller_tier"])])
            for key, (n, d) in table.items()]
    return out


@pytest.mark.parametrize(("shifted", "level", "mix"), [
    (window(SHIFTED), [], [{"seller_tier": "new"}]),                    # pure mix shift
    (window(USUAL, (*RATES[:3], 3 * RATES[3])), [{"seller_tier": "new"}], []),  # pure rate
])
def test_rate_vs_mix(
    shifted: MixTable, level: list[dict[str, str]], mix: list[dict[str, str]]
) -> None:
    """The two explanations never claim the same change: slice attribution names a slice
    whose rate rose, the mix names a slice whose volume grew."""
    shares = attribute(scores(shifted), "up", per_unit=True)
    hints = slice_hints(shares, global_fired=True, limit=3)
    assert [h.details["slice"] for h in hints if h.details["effect"] == "level"] == level
    assert [h.details["effect"] for h in hints] == (["level"] if level else ["broad"])
    assert named(mix_shift(window(USUAL), shifted, "up")) == mix


@pytest.mark.parametrize(("direction", "toward"), [("down", "gold"), ("up", "new")])
def test_a_mix_shift_is_named_only_toward_the_alerts_side(
    direction: Direction, toward: str
) -> None:
    to_gold = (0.50, 0.28, 0.16, 0.06)  # a gold-seller promotion: the platform's rate falls
    current = window(to_gold if toward == "gold" else SHIFTED)
    assert named(mix_shift(window(USUAL), current, direction)) == [{"seller_tier": toward}]
    other: Direction = "up" if direction == "down" else "down"
    assert named(mix_shift(window(USUAL), current, other)) == []


def test_a_shift_between_slices_of_one_rate_names_nothing() -> None:
    # Regions: their shares move over the day (time zones), their complaint rates are alike.
    def regions(shares: tuple[float, float]) -> MixTable:
        return {slice_key({"region": r}): (ORDERS * s * 0.02, ORDERS * s)
                for r, s in zip(("NA", "EU"), shares, strict=True)}

    assert mix_shift(regions((0.5, 0.5)), regions((0.7, 0.3)), "up") == []


def test_summary_says_the_gain_and_the_effect_on_the_rate() -> None:
    # The platform's rate goes from 2.07% to 2.53% (+22%); new sellers' part of it: +15 points
    # of the orders at 4.8% against 2.53% on average, 0.15 x 2.27 / 2.07 = +16%.
    (hint,) = mix_shift(window(USUAL), window(SHIFTED), "up")
    assert hint.summary == ("mix shifted toward seller_tier=new (+15% of the volume), "
                            "which alone moves the rate +16%")
    assert hint.details == {"slice": {"seller_tier": "new"}, "share_gain": 0.15, "effect": "mix"}


def test_baseline_rates_keep_a_rate_incident_out_of_the_mix() -> None:
    # NA at its busy hours: +10 points of the orders; complaints about NA fashion tripled its
    # rate at the same time. The mix did not move the rate; NA's rate did.
    def regions(na_share: float, na_rate: float) -> MixTable:
        return {slice_key({"region": "NA"}): (ORDERS * na_share * na_rate, ORDERS * na_share),
                slice_key({"region": "EU"}): (ORDERS * (1 - na_share) * 0.02,
                                              ORDERS * (1 - na_share))}

    usual, now = regions(0.4, 0.02), regions(0.5, 0.06)
    assert named(mix_shift(usual, now, "up")) == [{"region": "NA"}]
    assert mix_shift(usual, now, "up", rates="baseline") == []
    assert named(mix_shift(window(USUAL), window(SHIFTED), "up", rates="baseline")) == [
        {"seller_tier": "new"}]


def _gmv(labels: dict[str, str], actual: float, expected: float) -> Score:
    point = MetricPoint("gmv", slice_key(labels), 0, 900_000, actual, actual, 1.0)
    return Score(point, 9.0, expected, True, "down")


def test_shares_never_add_up_to_more_than_the_whole_change() -> None:
    """The issue's case: category=fashion and region=NA each 'explained 100%'. A slice that
    overlaps one named before claims no share and says so; disjoint slices share what is left."""
    found = attribute([
        _gmv({}, 600, 1000),
        _gmv({"category": "fashion"}, 100, 500),  # -400 of -400
        _gmv({"region": "NA"}, 150, 540),  # -390: the same orders, seen by region
        _gmv({"category": "toys"}, 20, 60),  # -40, disjoint from fashion
    ], "down", per_unit=False)
    hints = slice_hints(found, global_fired=True, limit=5)
    level = [h for h in hints if h.details.get("share") is not None]
    assert sum(h.details["share"] for h in level) <= 1.0 + 1e-9
    by_slice = {tuple(h.details["slice"].items()): h for h in hints}
    na = by_slice[(("region", "NA"),)]
    assert na.details["overlaps"] in ({"category": "fashion"}, {"category": "toys"})
    assert "share" not in na.details and "overlapping" in na.summary
    assert "explains 100%" not in " ".join(h.summary for h in hints if h is not level[0])
