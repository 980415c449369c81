"""A source's event-time windows: a robust watermark, late events counted and never merged."""

from __future__ import annotations

from stream_guard.aggregate.merger import WindowMerger, merger_for
from stream_guard.aggregate.points import PointBuilder
from stream_guard.aggregate.windows import Accumulators, WindowAggregator, merge_into
from stream_guard.config.rules import MetricRule
from tests.conftest import T0, order

MIN = 60_000


def _gmv(rules: list[MetricRule]) -> tuple[int, MetricRule]:
    return next((i, r) for i, r in enumerate(rules) if r.metric == "gmv")


def _closed(agg: WindowAggregator, merger: WindowMerger, m: int, final: bool = False
            ) -> list[tuple[int, Accumulators]]:
    """Hands the source's deltas to a one-source merger; the windows of metric `m` it closes."""
    watermark, partials = agg.watermark_ms, agg.take_open()
    assert watermark is not None
    merger.merge("s", [(p.window_start_ms, p.slices) for p in partials if p.metric_index == m],
                 watermark)
    return [(start, acc) for start, acc, _cube in merger.close(final)]


def _one_source(rule: MetricRule) -> WindowMerger:
    return merger_for(rule, frozenset({"s"}))


def test_window_closes_only_when_the_robust_watermark_passes_its_end(rules) -> None:
    agg = WindowAggregator(rules)
    m, gmv = _gmv(rules)
    merger = _one_source(gmv)
    agg.add("orders", T0 + 1 * MIN, order(T0, gmv=10.0))
    for _ in range(3):  # the watermark is the 3rd largest event time: 16m, less 2m lateness
        agg.add("orders", T0 + 16 * MIN, order(T0, gmv=5.0))
    assert _closed(agg, merger, m) == []
    for _ in range(3):
        agg.add("orders", T0 + 17 * MIN, order(T0, gmv=1.0))  # 15m: [0, 15m) closes
    assert [(start, acc[()]) for start, acc in _closed(agg, merger, m)] == [(T0, [10.0, 1.0])]


def test_one_or_two_events_far_ahead_do_not_move_the_watermark(rules) -> None:
    agg = WindowAggregator(rules)
    agg.add("orders", T0, order(T0))
    for i in range(5):
        agg.add("orders", T0 + i * MIN, order(T0, i))
    agg.add("orders", T0 + 365 * 86400_000, order(T0, 9))
    agg.add("orders", T0 + 366 * 86400_000, order(T0, 10))
    assert agg.watermark_ms == T0 + 4 * MIN
    agg.add("orders", T0 + 5 * MIN, order(T0, 11))  # still on time
    assert sum(agg.late.values()) == 0


def test_late_events_are_counted_not_merged(rules) -> None:
    agg = WindowAggregator(rules)
    m, gmv = _gmv(rules)
    merger = _one_source(gmv)
    agg.add("orders", T0 + 1 * MIN, order(T0))
    for _ in range(3):
        agg.add("orders", T0 + 20 * MIN, order(T0))
    assert [start for start, _ in _closed(agg, merger, m)] == [T0]
    agg.add("orders", T0 + 3 * MIN, order(T0, gmv=999.0))  # its window is closed
    assert agg.late[("orders", "gmv")] == 1
    for _ in range(3):
        agg.add("orders", T0 + 40 * MIN, order(T0))
    later = _closed(agg, merger, m)
    assert all(acc[0] != 999.0 for _, w in later for acc in w.values())


def test_slices_pairs_and_filters(rules) -> None:
    agg = WindowAggregator(rules)
    m, _ = _gmv(rules)
    agg.add("orders", T0, order(T0, region="EU", payment_method="card", gmv=2.0))
    agg.add("orders", T0, order(T0, region="NA", payment_method="card", gmv=3.0))
    agg.add("seller_onboarding", T0, {"decision": "rejected", "flagged_bad": False,
                                      "region": "EU", "category": "toys"})
    agg.add("seller_onboarding", T0, {"decision": "approved", "flagged_bad": True,
                                      "region": "EU", "category": "toys"})
    parts = {p.metric_index: p for p in agg.take_open() if p.window_start_ms == T0}
    s = parts[m].slices
    assert s[(("region", "EU"),)] == [2.0, 1.0] and s[(("payment_method", "card"),)] == [5.0, 2.0]
    assert s[(("payment_method", "card"), ("region", "EU"))] == [2.0, 1.0]
    onboarding = next(i for i, r in enumerate(rules) if r.metric == "bad_seller_onboarding_rate")
    assert parts[onboarding].slices[()] == [1.0, 1.0]  # the rejected seller counts nowhere


def test_silent_slice_gets_a_zero_point_and_empty_windows_still_close(rules) -> None:
    m, gmv = _gmv(rules)
    builder = PointBuilder(gmv)
    builder.build(T0, {(): [5.0, 2.0], (("region", "EU"),): [5.0, 2.0]})
    points = builder.build(T0 + 15 * MIN, {})
    assert {(p.slice, p.value) for p in points} == {((), 0.0), ((("region", "EU"),), 0.0)}
    agg = WindowAggregator(rules)
    merger = _one_source(gmv)
    agg.add("orders", T0, order(T0))
    for _ in range(3):
        agg.add("orders", T0 + 62 * MIN, order(T0))
    assert [start - T0 for start, _ in _closed(agg, merger, m)] == [0, 15 * MIN, 30 * MIN,
                                                                    45 * MIN]


def test_deltas_of_several_sources_merge_to_the_single_source_result(rules) -> None:
    events = [order(T0, i, region=r, gmv=float(i)) for i, r in enumerate(["EU", "NA"] * 5)]
    one = WindowAggregator(rules)
    two = [WindowAggregator(rules), WindowAggregator(rules)]
    for i, e in enumerate(events):
        one.add("orders", T0 + i, e)
        two[i % 2].add("orders", T0 + i, e)
    m, _ = _gmv(rules)
    whole = next(p for p in one.take_open() if p.metric_index == m).slices
    merged: Accumulators = {}
    for agg in two:
        merge_into(merged, next(p for p in agg.take_open() if p.metric_index == m).slices)
    assert merged == whole
