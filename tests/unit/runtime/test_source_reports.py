"""Which owners hear from a source after a batch: the metrics its topic feeds (deltas or not: the
watermark and liveness gate their windows), every metric when it carries interventions, and
every metric for a topic that feeds none (its reports anchor its offsets after a restart)."""

from __future__ import annotations

from typing import Any

import orjson

from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.codec import Codec
from stream_guard.runtime.reports import Report
from stream_guard.runtime.sources import SourcePool
from stream_guard.stats import EngineStats
from stream_guard.types import iso_utc
from tests.conftest import order

T0 = 1_772_000_000_000  # 2026-02-25T06:13:20Z


def _pool(rules: list[MetricRule], codec: Codec) -> SourcePool:
    return SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])


def _readers(rules: list[MetricRule], topic: str) -> set[str]:
    return {r.metric for r in rules if any(s.topic == topic for s in r.sources)}


def _action(i: int) -> dict[str, Any]:
    return {"event_id": f"ga-{i}", "ts": iso_utc(T0 + i), "action_id": f"a-{i}",
            "kind": "takedown", "scope": {"region": "EU"}, "description": "test"}


def _by_metric(reports: list[Report]) -> dict[str, Report]:
    assert len({r.metric for r in reports}) == len(reports)  # one per metric at most
    return {r.metric: r for r in reports}


def test_a_source_reports_to_the_metrics_its_topic_feeds(
    rules: list[MetricRule], codec: Codec
) -> None:
    pool = _pool(rules, codec)
    pool.ingest("orders", 0, 0, orjson.dumps(order(T0, 0)), None)
    got = _by_metric(pool.reports(5))
    readers = _readers(rules, "orders")
    assert set(got) == readers and 0 < len(readers) < len(rules)
    assert all(r.windows and (r.first_offset, r.next_offset) == (0, 1) for r in got.values())


def test_a_report_without_deltas_still_reaches_the_metrics_the_topic_feeds(
    rules: list[MetricRule], codec: Codec
) -> None:
    pool = _pool(rules, codec)
    pool.ingest("orders", 0, 0, orjson.dumps(order(T0, 0)), None)
    pool.reports(5)
    pool.ingest("orders", 0, 1, b"{not json", None)  # a batch of one dead letter
    got = _by_metric(pool.reports(6))
    assert set(got) == _readers(rules, "orders")
    assert all(not r.windows and r.watermark_ms == T0 and (r.first_offset, r.next_offset)
               == (1, 2) for r in got.values())


def test_interventions_reach_every_metric(rules: list[MetricRule], codec: Codec) -> None:
    pool = _pool(rules, codec)
    assert not _readers(rules, "governance_actions")  # informs hints, gates nothing
    pool.ingest("governance_actions", 0, 0, orjson.dumps(_action(1)), None)
    got = _by_metric(pool.reports(5))
    assert set(got) == {r.metric for r in rules}
    assert all(len(r.interventions) == 1 for r in got.values())


def test_a_topic_feeding_no_metric_reports_to_every_metric_even_without_interventions(
    rules: list[MetricRule], codec: Codec
) -> None:
    pool = _pool(rules, codec)
    pool.ingest("governance_actions", 0, 7, b"{not json", None)
    got = _by_metric(pool.reports(5))
    assert set(got) == {r.metric for r in rules}
    assert all((r.first_offset, r.next_offset) == (7, 8) for r in got.values())
