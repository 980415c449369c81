"""Root cause over the live leaf cube and the sellers, through replay (source stage, merger,
engine): which element and which sellers a new episode's record names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from stream_guard.aggregate.cube import SELLERS_KEPT
from stream_guard.aggregate.windows import WindowAggregator
from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.codec import Codec
from stream_guard.types import AlertRecord, iso_utc
from tests.conftest import T0

WINDOW = 30 * 60_000
REGIONS = ("EU", "NA", "APAC", "LATAM", "MEA")
CATEGORIES = ("beauty", "toys", "home", "books", "sports", "fashion")
TIERS = ("gold", "silver", "bronze", "new")
SELLERS = 300
SPIKE_FROM = 34  # windows of normal traffic before
Spike = Callable[[str, str, str], float]  # (region, category, tier) -> factor
NO_FLOOD: dict[int, int] = {}


def complaints_rule(**explain: Any) -> MetricRule:
    """Complaints counted per 30 minutes over three dimensions and no configured pair; leaf cube
    (opt-in) and sellers (the default) on unless `explain` says otherwise."""
    explain = {"localize": True, **explain}
    return MetricRule.model_validate({
        "metric": "complaints", "value": "count", "source": {"topic": "complaints"},
        "window": "30m", "dimensions": ["region", "category", "seller_tier"],
        "detector": {"type": "seasonal", "period": 1800, "warmup_periods": 8}, "direction": "up",
        "alert": {"route": "r", "resolve_after": 1, "severity": {"warning": 5, "critical": 9}},
        "explain": explain})


def _events(
    windows: int, spike: Spike, flood: dict[int, int], seed: int = 3
) -> list[dict[str, Any]]:
    """~6 complaints per leaf and window, each from one of the leaf's 300 sellers drawn at
    random; from window `SPIKE_FROM` on, a leaf's rate is multiplied by `spike` and the
    sellers of `flood` add that many complaints each per window (in toys x new, EU)."""
    rng = np.random.default_rng(seed)
    rows = []
    for w in range(windows):
        late = w >= SPIKE_FROM
        for r in REGIONS:
            for c in CATEGORIES:
                for t in TIERS:
                    n = rng.poisson(6 * (spike(r, c, t) if late else 1.0))
                    rows += [(w, r, c, t, int(s)) for s in rng.integers(0, SELLERS, size=n)]
        if late:
            rows += [(w, "EU", "toys", "new", s) for s, n in flood.items() for _ in range(n)]
    events = []
    for i, (w, r, c, t, s) in enumerate(rows):
        ts = T0 + w * WINDOW + int(rng.integers(0, WINDOW))
        events.append({"event_id": f"e{i}", "ts": iso_utc(ts), "complaint_id": f"c{i}",
                       "order_id": "o", "seller_id": f"s-{s:04d}", "region": r,
                       "category": c, "seller_tier": t, "reason": "not_received"})
    events.sort(key=lambda e: e["ts"])
    return events


def _first_record(
    rule: MetricRule, codec: Codec, spike: Spike, flood: dict[int, int] = NO_FLOOD
) -> AlertRecord:
    replayer = Replayer([rule], codec, partitions={"complaints": 1})
    alerts: list[AlertRecord] = []
    for i, event in enumerate(_events(40, spike, flood)):
        replayer.ingest("complaints", None, event, f"c:{i}")
        if i % 400 == 0:
            alerts += replayer.advance()
    alerts += replayer.advance(final=True)
    spiked = [a for a in alerts if a["reason"] == "new"
              and a["window_start"] >= iso_utc(T0 + SPIKE_FROM * WINDOW)]
    assert spiked, "the spike raised no alert"
    return spiked[0]


def _slices(record: AlertRecord) -> list[dict[str, Any]]:
    return [h for h in record.to_dict()["hints"] if h["kind"] == "slice"]


def test_a_three_attribute_element_that_is_no_configured_pair_is_named(codec: Codec) -> None:
    def spike(r: str, c: str, t: str) -> float:
        return 15.0 if (r, c, t) == ("EU", "beauty", "new") else 1.0

    record = _first_record(complaints_rule(), codec, spike)
    slices = _slices(record)
    assert slices[0]["slice"] == {"region": "EU", "category": "beauty", "seller_tier": "new"}
    assert slices[0]["effect"] == "level" and slices[0]["relative_change"] > 2.0
    assert 0.5 < slices[0]["share"] <= 1.0
    assert sum(h.get("share") or 0.0 for h in slices) <= 1.0 + 1e-9
    assert not any(h["kind"] == "sellers" for h in record.to_dict()["hints"])


def test_a_platform_wide_change_is_the_verdict_no_slice_explains_it(codec: Codec) -> None:
    record = _first_record(complaints_rule(), codec, lambda *_: 2.5)
    assert _slices(record)[0]["summary"] == "platform-wide: no slice explains it"
    assert _slices(record)[0]["effect"] == "broad"


def test_a_few_sellers_carrying_the_change_are_named_with_their_own_change(
    codec: Codec,
) -> None:
    flood = {7: 50, 8: 35, 9: 25}  # complaints per window, on top of the usual
    hints = _first_record(complaints_rule(), codec, lambda *_: 1.0, flood).to_dict()["hints"]
    sellers = next(h for h in hints if h["kind"] == "sellers")
    assert [s["seller"] for s in sellers["sellers"]] == ["s-0007", "s-0008", "s-0009"]
    assert sellers["share"] > 0.5 and sellers["sellers"][0]["change"] > 10
    assert sellers["summary"].startswith("3 sellers explain ")
    assert "s-0007 (+" in sellers["summary"] and sellers["field"] == "seller_id"


def test_sellers_are_not_named_when_the_change_is_spread_over_many(codec: Codec) -> None:
    record = _first_record(complaints_rule(), codec, lambda *_: 2.5)
    assert not any(h["kind"] == "sellers" for h in record.to_dict()["hints"])


def test_without_localisation_and_sellers_the_configured_slices_explain(codec: Codec) -> None:
    def spike(r: str, c: str, t: str) -> float:
        return 3.0 if r == "EU" else 1.0

    record = _first_record(complaints_rule(localize=False, sellers=None), codec, spike)
    assert _slices(record)[0]["slice"] == {"region": "EU"}
    assert not any(h["kind"] == "sellers" for h in record.to_dict()["hints"])


@pytest.mark.parametrize("heavy", [0, 5_000])
def test_a_flood_of_sellers_keeps_a_bounded_summary_and_the_heavy_hitter(heavy: int) -> None:
    agg = WindowAggregator([complaints_rule()])
    event = {"region": "EU", "category": "toys", "seller_tier": "new"}
    for i in range(10_000):
        seller = "s-heavy" if i % 3 == 0 and heavy else f"s-{i}"
        agg.add("complaints", T0 + i, {**event, "seller_id": seller})
    assert [p.cube for p in agg.take_open()] == [None]  # held until the window is complete
    (window,) = agg.take_open(flush=True)
    assert window.cube is not None and not window.slices
    sellers = {s: acc[0] for s, acc in window.cube.sellers.items()}
    assert len(sellers) <= SELLERS_KEPT + 1  # the summary, and `other`
    assert sum(sellers.values()) == 10_000  # what the summary dropped went to `other`
    if heavy:  # a third of the window: never dropped, undercounted by at most n / (k / 2)
        assert sellers["s-heavy"] >= 10_000 / 3 - 10_000 / (SELLERS_KEPT / 2)


def test_an_element_is_named_by_its_share_of_the_episodes_change_not_the_platforms(
    codec: Codec,
) -> None:
    """EU x beauty x new spikes while NA's complaints fall by more: the platform's change is
    negative, so the element's share of it is nothing, but it is all of EU's change."""
    def spike(r: str, c: str, t: str) -> float:
        return 15.0 if (r, c, t) == ("EU", "beauty", "new") else 0.3 if r == "NA" else 1.0

    record = _first_record(complaints_rule(), codec, spike)
    assert record.to_dict()["slice"] == {"region": "EU"}
    slices = _slices(record)
    assert slices[0]["slice"] == {"region": "EU", "category": "beauty", "seller_tier": "new"}
    assert slices[0]["share"] > 0.8
