"""Replay parity, without Kafka: the live split (a source per partition, one owner per partials
partition over the metrics homed there, reports in arrival order, a wall clock) gives the alerts
replay gives (invariant 1), owner by owner."""

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
from stream_guard.ingest.kafka_batch import record_partition
from stream_guard.ownership import home
from stream_guard.runtime.owner import Owner, Owners
from stream_guard.runtime.reports import Report, Tick, decode, encode
from stream_guard.runtime.sources import SourcePool, expected_sources, source_name
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord
from tests.parity import arrivals, parity_records, per_owner, raw_value, replay_alerts

IDLE_MS = 10_000


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return parity_records()


def _live(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec],
    records: list[dict[str, Any]], batch: int,
) -> tuple[list[AlertRecord], Owners]:
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    partitions = {name: spec.partitions for name, spec in topics.items()}
    sources = expected_sources(rules, partitions)
    owners = Owners(rules, partitions["partials"],
                    lambda group, stats: Owner(Engine(group, stats=stats), sources, IDLE_MS))
    for rule in rules:
        _owner(owners, rule.metric).adopt(rule.metric, None, None, 0)
    alerts: list[AlertRecord] = []
    now = 0

    def deliver(reports: list[Report | Tick]) -> None:
        for r in reports:
            wire = decode(encode(r)) if isinstance(r, Report) else r  # as on the topic
            owner = _owner(owners, r.metric)
            closed = owner.on_report(wire) if isinstance(wire, Report) else owner.on_tick(wire)
            alerts.extend(closed.alerts)

    arrival = arrivals(records)  # the Kafka timestamps `stream-guard produce` gives them
    for chunk in _chunks(records, batch):
        for i, rec in chunk:
            key, n = rec.get("key"), partitions[rec["topic"]]
            p = record_partition(key, n)
            pool.ingest(rec["topic"], p, i, raw_value(rec), arrival[i])
        now += 5
        deliver(list(pool.reports(now)))
    # the input has ended: every source is caught up and, IDLE_MS later, idle; the owner closes
    # what is complete
    # (end, first) = (0, 0): nothing left to merge anywhere
    caught_up = {source_name(t, p): (0, 0) for t, n in partitions.items() for p in range(n)}
    deliver([Tick(r.metric, now, caught_up) for r in rules])
    now += IDLE_MS
    deliver([Tick(r.metric, now, caught_up) for r in rules])
    return alerts, owners


def _owner(owners: Owners, metric: str) -> Owner:
    """The owner of `metric`'s home partition (where its partials messages go)."""
    owner = owners.of(home(metric, owners.partitions))
    assert owner is not None
    return owner


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
    got, owners = _live(rules, codec, topics, records, batch)
    assert len(expected) >= 4  # the simulated incidents do page
    n = owners.partitions
    assert per_owner(got, n) == per_owner(expected, n)
    assert sum(owners.stats.late_partials.values()) == 0
