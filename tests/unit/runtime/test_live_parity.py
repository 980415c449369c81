"""Replay parity, without Kafka: the live split (a source per partition, one owner per metric,
reports in arrival order, a wall clock) gives the alerts replay gives (invariant 1)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stream_guard.aggregate.source import SourceStage
from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.engine import Engine
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.kafka_batch import partition_for
from stream_guard.runtime.owner import Owner
from stream_guard.runtime.reports import Report, Tick, decode, encode
from stream_guard.runtime.sources import SourcePool, expected_sources, source_name
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord
from tests.parity import arrivals, comparable, parity_records, raw_value, replay_alerts

IDLE_MS = 10_000


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return parity_records()


def _live(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec],
    records: list[dict[str, Any]], batch: int,
) -> tuple[list[AlertRecord], Owner]:
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    partitions = {name: spec.partitions for name, spec in topics.items()}
    owner = Owner(Engine(rules), expected_sources(rules, partitions), IDLE_MS)
    for r in rules:
        owner.adopt(r.metric, None, None, 0)
    alerts: list[AlertRecord] = []
    now = 0

    def deliver(reports: list[Report]) -> None:
        for r in reports:
            wire = decode(encode(r))  # through the partials topic's format
            assert isinstance(wire, Report)
            alerts.extend(owner.on_report(wire).alerts)

    arrival = arrivals(records)  # the Kafka timestamps `stream-guard produce` gives them
    for chunk in _chunks(records, batch):
        for i, rec in chunk:
            key, n = rec.get("key"), partitions[rec["topic"]]
            p = 0 if key is None or n == 1 else partition_for(str(key).encode(), n)
            pool.ingest(rec["topic"], p, i, raw_value(rec), arrival[i])
        now += 5
        deliver(pool.reports(now))
    # the input has ended: every source is caught up and, IDLE_MS later, idle; the owner closes
    # what is complete
    # (end, first) = (0, 0): nothing left to merge anywhere
    caught_up = {source_name(t, p): (0, 0) for t, n in partitions.items() for p in range(n)}
    for r in rules:
        alerts.extend(owner.on_tick(Tick(r.metric, now, caught_up)).alerts)
    now += IDLE_MS
    for r in rules:
        alerts.extend(owner.on_tick(Tick(r.metric, now, caught_up)).alerts)
    return alerts, owner


def _chunks(records: list[dict[str, Any]], n: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    for start in range(0, len(records), n):
        yield list(enumerate(records[start:start + n], start))


@pytest.fixture(scope="module")
def replayed(
    rules: list[MetricRule], codec: Codec, records: list[dict[str, Any]]
) -> list[AlertRecord]:
    return replay_alerts(Replayer(rules, codec), records)


@pytest.mark.parametrize("batch", [997, 20_000])
def test_live_split_gives_the_alerts_of_replay(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec],
    records: list[dict[str, Any]], replayed: list[AlertRecord], batch: int,
) -> None:
    expected = replayed
    got, owner = _live(rules, codec, topics, records, batch)
    assert len(expected) >= 4  # the simulated incidents do page
    assert [comparable(a) for a in got] == [comparable(a) for a in expected]
    assert sum(owner.engine.stats.late_partials.values()) == 0
