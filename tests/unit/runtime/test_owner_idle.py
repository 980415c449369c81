"""The owner calls a source caught up from what it has merged, never from what a consumer has
fetched: a partition whose records sit unprocessed in a worker's buffers holds windows back."""

from __future__ import annotations

from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine
from stream_guard.runtime.owner import Owner
from stream_guard.runtime.reports import Report, Tick
from tests.conftest import T0

MIN = 60_000
IDLE_MS = 1_000
SOURCES = [f"orders/{p}" for p in range(4)]


def _report(source: str, watermark: int, next_offset: int, sent_ms: int) -> Report:
    deltas = [(T0, {(): [10.0, 1.0]})]
    return Report("gmv", source, watermark, deltas, [], sent_ms, 0, next_offset)


def test_a_source_behind_its_partition_end_is_never_idle(rules: list[MetricRule]) -> None:
    gmv = [r for r in rules if r.metric == "gmv"]
    owner = Owner(Engine(gmv), {"gmv": frozenset(SOURCES)}, IDLE_MS)
    owner.adopt("gmv", None, None, 0)
    for source in SOURCES[:3]:
        owner.on_report(_report(source, T0 + 60 * MIN, 10, 0))
    owner.on_report(_report("orders/3", T0 + 1 * MIN, 5, 0))  # it lags: window T0 stays open
    fetched_not_merged = {s: (10, 0) for s in SOURCES}  # orders/3's end is 10, merged 5
    closed = owner.on_tick(Tick("gmv", 5_000, fetched_not_merged))
    assert not closed.windows
    merged_all = {**fetched_not_merged, "orders/3": (5, 0)}
    closed = owner.on_tick(Tick("gmv", 5_100, merged_all))
    assert "gmv" in closed.metrics  # orders/3 is caught up and silent: idle
