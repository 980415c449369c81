"""Owners per partials partition (runtime/owner.py `Owners`, runtime/checkpoint.py): a step
for partition p writes only p's state, so a worker given p after a rebalance, restoring only
p's changelog partition (as Faust does), continues p's owner exactly; a message on another
partition than its metric's home is dropped and counted, never a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.engine import Engine
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.kafka_batch import record_partition
from stream_guard.ownership import home
from stream_guard.runtime.checkpoint import Checkpoint
from stream_guard.runtime.owner import Owner, Owners
from stream_guard.runtime.reports import Report, Tick
from stream_guard.runtime.sources import SourcePool, expected_sources
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord
from tests.parity import arrivals, comparable, per_owner, raw_value

PARTITIONS = 4
BATCH = 400
Message = tuple[int, int, Report | Tick]
"""(partials partition, offset, message)."""


class Changelog(dict[str, str]):
    """A worker's `owner-state` table; every write also goes to the changelog partition of the
    message being handled, as Faust routes it (`logs`: partition -> key -> value)."""

    def __init__(self, logs: dict[int, dict[str, str]], initial: dict[str, str] | None = None):
        super().__init__(initial or {})
        self.logs, self.current = logs, -1

    def __setitem__(self, key: str, value: str) -> None:
        self.logs.setdefault(self.current, {})[key] = value
        super().__setitem__(key, value)


@pytest.fixture(scope="module")
def messages(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec]
) -> tuple[list[Message], dict[str, frozenset[str]]]:
    """Two simulated days as partials messages, each on its metric's home partition."""
    records = list(Simulation(SimulationConfig(days=2, seed=3, scale=0.3)).records())
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    partitions = {name: spec.partitions for name, spec in topics.items()}
    arrival = arrivals(records)
    out: list[Message] = []
    offsets = [0] * PARTITIONS
    for start in range(0, len(records), BATCH):
        for i, rec in enumerate(records[start:start + BATCH], start):
            key, n = rec.get("key"), partitions[rec["topic"]]
            p = record_partition(key, n)
            pool.ingest(rec["topic"], p, i, raw_value(rec), arrival[i])
        batch: list[Report | Tick] = [*pool.reports(start)]
        if (start // BATCH) % 20 == 0:
            batch += [Tick(r.metric, start) for r in rules]
        for msg in batch:
            p = home(msg.metric, PARTITIONS)
            out.append((p, offsets[p], msg))
            offsets[p] += 1
    return out, expected_sources(rules, partitions)


class Worker:
    """One worker's owners over a `Changelog` table, delivering what it is handed."""

    def __init__(self, rules: list[MetricRule], sources: dict[str, frozenset[str]],
                 table: Changelog, log: list[Message]) -> None:
        self.owners = Owners(rules, PARTITIONS, lambda group, stats: Owner(
            Engine(group, stats=stats), sources, 10_000))
        self.table, self.log = table, log
        self.published: list[AlertRecord] = []
        self.checkpoint = Checkpoint(self.owners, table, self._publish, save_every=7,
                                     read_log=self._read)

    def deliver(self, messages: list[Message], keep: Callable[[int], bool] = lambda p: True,
                ) -> None:
        async def run() -> None:
            for p, offset, msg in messages:
                if keep(p):
                    self.table.current = p
                    await self.checkpoint.on_message((p, offset), msg, lambda: None)
        asyncio.run(run())

    async def _read(self, partition: int, lo: int, hi: int) -> list[tuple[int, Any]]:
        self.table.current = partition  # (read while handling a message of `partition`)
        return [(o, m) for p, o, m in self.log if p == partition and lo <= o < hi]

    async def _publish(self, records: list[AlertRecord]) -> None:
        self.published += records


def _unique(alerts: list[AlertRecord]) -> dict[int, list[tuple[Any, ...]]]:
    firsts = {str(comparable(a)): a for a in reversed(alerts)}
    return per_owner([firsts[k] for k in dict.fromkeys(str(comparable(a)) for a in alerts)],
                     PARTITIONS)


def test_a_step_writes_only_its_partitions_metrics(
    rules: list[MetricRule], messages: tuple[list[Message], dict[str, frozenset[str]]]
) -> None:
    log, sources = messages
    logs: dict[int, dict[str, str]] = {}
    worker = Worker(rules, sources, Changelog(logs), log)
    worker.deliver(log)
    owners = worker.owners
    assert len(owners.groups) > 1 and worker.published, "the metrics spread; the input pages"
    assert set(logs) == set(owners.groups)
    for p, written in logs.items():
        own = {f"{m}/{kind}/{slot}" for m in owners.metrics(p) for kind in ("windows", "model")
               for slot in (0, 1)}
        assert set(written) <= own | {f"position/partials/{p}"}, f"partition {p}"
        assert f"position/partials/{p}" in written


def test_a_partition_moved_to_another_worker_continues_its_owner(
    rules: list[MetricRule], messages: tuple[list[Message], dict[str, frozenset[str]]]
) -> None:
    """Worker A handles everything up to the middle; partition `moved` then goes to worker B,
    which restores only that partition's changelog and is delivered from where Faust committed
    (past what A saved: B reads the gap back from the log). A keeps the other partitions."""
    log, sources = messages
    steady = Worker(rules, sources, Changelog({}), log)
    steady.deliver(log)
    moved = home("gmv", PARTITIONS)  # (the metric that pages in these two days)
    middle = len(log) // 2
    logs: dict[int, dict[str, str]] = {}
    a = Worker(rules, sources, Changelog(logs), log)
    a.deliver(log[:middle])
    a.checkpoint.revoke()  # a rebalance revokes everything, then gives A back the rest
    b = Worker(rules, sources, Changelog({}, logs[moved]), log)
    a.deliver(log[middle:], keep=lambda p: p != moved)
    b.deliver(log[middle:], keep=lambda p: p == moved)
    got = _unique(a.published + b.published)
    assert got == _unique(steady.published)
    assert got[moved], "the moved owner pages"
    assert logs.keys() - {moved}, "the other owners saved state too"
    assert all(r["metric"] in b.owners.metrics(moved) for r in b.published)


def test_a_message_off_its_home_partition_is_dropped_and_counted(
    rules: list[MetricRule], messages: tuple[list[Message], dict[str, frozenset[str]]]
) -> None:
    log, sources = messages
    worker = Worker(rules, sources, Changelog({}), log)
    gmv = home("gmv", PARTITIONS)
    wrong = next(p for p in range(PARTITIONS) if p != gmv)
    worker.deliver([(wrong, 0, Tick("gmv", 1)), (gmv, 0, Tick("no-such-metric", 1))])
    assert worker.owners.stats.reports[("gmv", "misrouted")] == 1
    assert worker.owners.stats.reports[("unknown", "misrouted")] == 1
    assert not worker.owners.owns("gmv")
