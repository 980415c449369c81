"""Event-time windows: close on the watermark, late events counted and never merged."""

from __future__ import annotations

from stream_guard.aggregate.points import PointBuilder, merge_accumulators
from stream_guard.aggregate.windows import WindowAggregator
from stream_guard.config.rules import MetricRule
from tests.conftest import T0, order

MIN = 60_000


def _gmv(rules: list[MetricRule]) -> tuple[int, MetricRule]:
    return next((i, r) for i, r in enumerate(rules) if r.metric == "gmv")


def test_window_closes_only_when_the_watermark_passes_its_end(rules) -> None:
    agg = WindowAggregator(rules)
    m, _ = _gmv(rules)
    agg.add("orders", T0 + 1 * MIN, order(T0, gmv=10.0))
    agg.add("orders", T0 + 16 * MIN, order(T0, gmv=5.0))  # watermark = 16m - 2m lateness
    assert [p for p in agg.close() if p.metric_index == m] == []
    agg.add("orders", T0 + 17 * MIN, order(T0, gmv=1.0))  # watermark 15m: [0, 15m) closes
    closed = [p for p in agg.close() if p.metric_index == m]
    assert [(p.window_start_ms, p.slices[()]) for p in closed] == [(T0, [10.0, 1.0])]


def test_late_events_are_counted_not_merged(rules) -> None:
    agg = WindowAggregator(rules)
    m, _ = _gmv(rules)
    agg.add("orders", T0 + 1 * MIN, order(T0))
    agg.add("orders", T0 + 20 * MIN, order(T0))
    assert [p.window_start_ms for p in agg.close() if p.metric_index == m] == [T0]
    agg.add("orders", T0 + 3 * MIN, order(T0, gmv=999.0))  # its window is closed
    assert agg.late[("orders", "gmv")] == 1
    agg.add("orders", T0 + 40 * MIN, order(T0))
    later = [p for p in agg.close() if p.metric_index == m]
    assert all(acc[0] != 999.0 for p in later for acc in p.slices.values())


def test_slices_pairs_and_filters(rules) -> None:
    agg = WindowAggregator(rules)
    m, _ = _gmv(rules)
    agg.add("orders", T0, order(T0, region="EU", payment_method="card", gmv=2.0))
    agg.add("orders", T0, order(T0, region="NA", payment_method="card", gmv=3.0))
    agg.add("seller_onboarding", T0, {"decision": "rejected", "flagged_bad": False,
                                      "region": "EU", "category": "toys"})
    agg.add("seller_onboarding", T0, {"decision": "approved", "flagged_bad": True,
                                      "region": "EU", "category": "toys"})
    parts = {p.metric_index: p for p in agg.close(T0 + 86400_000) if p.window_start_ms == T0}
    s = parts[m].slices
    assert s[(("region", "EU"),)] == [2.0, 1.0] and s[(("payment_method", "card"),)] == [5.0, 2.0]
    assert s[(("payment_method", "card"), ("region", "EU"))] == [2.0, 1.0]
    onboarding = next(i for i, r in enumerate(rules) if r.metric == "bad_seller_onboarding_rate")
    assert parts[onboarding].slices[()] == [1.0, 1.0]  # the rejected seller counts nowhere


def test_silent_slice_gets_a_zero_point_and_empty_windows_still_close(rules) -> None:
    m, gmv = _gmv(rules)
    builder = PointBuilder(gmv)
    builder.build(T0, {(): [5.0, 1.0], (("region", "EU"),): [5.0, 1.0]})
    points = builder.build(T0 + 15 * MIN, {})
    assert {(p.slice, p.value) for p in points} == {((), 0.0), ((("region", "EU"),), 0.0)}
    agg = WindowAggregator(rules)
    agg.add("orders", T0, order(T0))
    agg.add("orders", T0 + 62 * MIN, order(T0))
    assert [p.window_start_ms - T0 for p in agg.close() if p.metric_index == m] == [
        0, 15 * MIN, 30 * MIN, 45 * MIN]


def test_partials_of_several_sources_merge_to_the_single_source_result(rules) -> None:
    events = [order(T0, i, region=r, gmv=float(i)) for i, r in enumerate(["EU", "NA"] * 5)]
    one = WindowAggregator(rules)
    two = [WindowAggregator(rules), WindowAggregator(rules)]
    for i, e in enumerate(events):
        one.add("orders", T0 + i, e)
        two[i % 2].add("orders", T0 + i, e)
    m, _ = _gmv(rules)
    whole = next(p for p in one.close(T0 + 86400_000) if p.metric_index == m).slices
    parts = [next(p for p in a.close(T0 + 86400_000) if p.metric_index == m).slices for a in two]
    assert merge_accumulators(parts) == whole
