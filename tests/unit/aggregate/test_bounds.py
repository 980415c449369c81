"""Per-slice state bounds (aggregate/bounds.py): the cap, eviction of long-silent series, and
what the engine drops and counts with them."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from stream_guard.aggregate import bounds
from stream_guard.aggregate.bounds import IDLE_MS, SeriesBound, idle_slices, series_cap
from stream_guard.aggregate.points import PointBuilder
from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine

WINDOW_MS = 300_000


def _rule(max_series: int = 5000, detector: dict[str, Any] | None = None) -> MetricRule:
    return MetricRule.model_validate({
        "metric": "orders_by_seller", "value": "count", "window": "5m",
        "source": {"topic": "orders", "aggregate": "count"}, "dimensions": ["seller_id"],
        "detector": detector or {"type": "threshold", "upper": 1e9}, "alert": {"route": "r"},
        "max_series": max_series})


def _window(*sellers: str, n: float = 5.0) -> dict[Any, list[float]]:
    slices = {(("seller_id", s),): [n, n] for s in sellers}
    return {(): [n * len(sellers), n * len(sellers)], **slices}


def test_idle_slices_longest_silent_first_never_the_platform() -> None:
    seen = {(): 0, (("d", "a"),): 30, (("d", "b"),): 10, (("d", "c"),): 99}
    assert idle_slices(seen, now_ms=100, count=5, idle_ms=50) == [(("d", "b"),), (("d", "a"),)]
    assert idle_slices(seen, now_ms=100, count=1, idle_ms=50) == [(("d", "b"),)]
    assert idle_slices(seen, now_ms=100, count=0, idle_ms=50) == []


def test_cap_not_measured_below_check_from(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(rule: MetricRule) -> int:
        raise AssertionError("measured")

    monkeypatch.setattr(bounds, "warm_size", fail)
    bound = SeriesBound(_rule())
    assert bound.room(bounds.CHECK_FROM - 10) == 5000 - bounds.CHECK_FROM + 10
    assert bound.cap is None


def test_cap_holds_the_byte_budget_within_check_from_and_max_series() -> None:
    seasonal = _rule(detector={"type": "seasonal", "period": 86400})
    size = bounds.warm_size(seasonal)
    cap = series_cap(seasonal)
    assert bounds.CHECK_FROM <= cap < 5000
    assert cap * size <= bounds.STATE_BYTES < (cap + 1) * size
    assert series_cap(_rule(max_series=150, detector={"type": "seasonal", "period": 86400})) \
        == min(150, cap)


def test_a_long_silent_series_gives_way_a_recent_one_does_not() -> None:
    builder = PointBuilder(_rule(max_series=3))  # the platform and two sellers
    builder.build(0, _window("a"))
    builder.build(IDLE_MS, _window("b"))
    start = IDLE_MS + WINDOW_MS  # 'a' silent for IDLE_MS + a window, 'b' for one window
    points = builder.build(start, _window("c"))
    assert builder.forgotten == [(("seller_id", "a"),)]
    assert {p.slice for p in points} == {(), (("seller_id", "b"),), (("seller_id", "c"),)}
    assert (builder.bound.evicted, builder.admitted) == (1, 3)
    points = builder.build(start + WINDOW_MS, _window("d"))  # 'b' silent for 2 windows only
    assert builder.forgotten == []
    assert (("seller_id", "other"),) in {p.slice for p in points}
    assert builder.folded == 1


def test_builder_saved_before_bounds_restores_with_counts_at_zero() -> None:
    builder = PointBuilder(_rule())
    builder.build(0, _window("a"))
    state = builder.__dict__
    del state["_bound"], state["admitted"]  # as pickled by a worker without bounds.py
    back = pickle.loads(pickle.dumps(builder))
    assert (back.admitted, back.bound.evicted) == (0, 0)
    assert back.has_series((("seller_id", "a"),))


def test_engine_drops_an_evicted_series_detector_and_counts_it() -> None:
    engine = Engine([_rule(max_series=3)])
    engine.on_window(0, 0, _window("a"))
    engine.on_window(0, IDLE_MS, _window("b"))
    assert engine.series_count() == 3
    engine.on_window(0, IDLE_MS + WINDOW_MS, _window("c"))
    state = engine.metric_state(0)
    assert set(state.detectors) == {(), (("seller_id", "b"),), (("seller_id", "c"),)}
    assert engine.stats.evicted_series["orders_by_seller"] == 1
    assert engine.stats.admitted_series["orders_by_seller"] == 3
