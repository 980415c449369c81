"""The owner agent on partials messages as Faust delivers them: redelivered ones (before the
saved position) are acked and change nothing; a gap is read back from the log first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from stream_guard.clock import SystemClock
from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine
from stream_guard.observability.metrics import RuntimeMetrics
from stream_guard.runtime.agents import OwnerAgent
from stream_guard.runtime.checkpoint import Checkpoint
from stream_guard.runtime.owner import Owner, Owners
from stream_guard.runtime.reports import Report, Tick, decode, encode_tick


@dataclass
class _Message:
    partition: int
    offset: int


@dataclass
class _Event:
    value: bytes
    message: _Message
    acked: list[int] = field(default_factory=list)

    def ack(self) -> None:
        self.acked.append(self.message.offset)


def _agent(rules: list[MetricRule], table: dict[str, str], log: dict[int, bytes],
           reads: list[tuple[int, int]]) -> OwnerAgent:
    sources = {r.metric: frozenset({"orders/0"}) for r in rules}
    owners = Owners(rules, 1, lambda group, stats: Owner(Engine(group, stats=stats), sources,
                                                         10_000))

    async def read_log(partition: int, lo: int, hi: int) -> list[tuple[int, Report | Tick]]:
        reads.append((lo, hi))
        return [(o, decode(log[o])) for o in range(lo, hi)]

    return OwnerAgent(Checkpoint(owners, table, _publish, save_every=3, read_log=read_log),
                      RuntimeMetrics(), SystemClock())


async def _publish(records: list[Any]) -> None:
    assert not records


def test_redelivered_messages_are_acked_and_a_gap_is_read_first(rules: list[MetricRule]) -> None:
    gmv = [r for r in rules if r.metric == "gmv"]
    log = {o: encode_tick("gmv", 1_000 * o, {}) for o in range(20)}
    reads: list[tuple[int, int]] = []
    agent = _agent(gmv, {"position/partials/0": "10"}, log, reads)
    old, later = _Event(log[5], _Message(0, 5)), _Event(log[12], _Message(0, 12))

    asyncio.run(agent.on_event(old))
    assert old.acked == [5] and not agent.owners.owns("gmv")  # saved before the crash
    asyncio.run(agent.on_event(later))
    assert reads == [(10, 12)] and agent.owners.owns("gmv")
    assert agent.checkpoint.table["position/partials/0"] == "13"  # 10-12 saved (every 3 messages)
    assert later.acked == [12]
