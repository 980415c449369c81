"""Co-moving metrics with several alerts partitions (runtime/comoving.py): each partition's
entries under its own prefix, statuses read off the ticks topic, bad ones refused."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING, Inhibitor
from stream_guard.alert.routing import AlertLabels
from stream_guard.errors import InvalidEvent
from stream_guard.runtime.comoving import Correlators, PartitionStore, Status, parse_status
from tests.unit.alert.test_correlate import record

FIRING = {"metric": "gmv", "severity": "critical", "slice": {"region": "EU"}}


class Ticks:
    """The ticks topic: what was sent to which partition (deliveries resolve at once)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, dict[str, Any]]] = []

    async def send(self, *, value: bytes, partition: int, value_serializer: str) -> Any:
        self.sent.append((partition, orjson.loads(value)))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_a_partition_store_sees_only_its_keys() -> None:
    table: dict[str, Any] = {}
    zero, one = PartitionStore(table, 0), PartitionStore(table, 1)
    zero["ep"], one["ep"], one["other"] = {"a": 0}, {"a": 1}, {"a": 2}
    assert (zero["ep"], one["ep"], sorted(one), len(zero)) == ({"a": 0}, {"a": 1},
                                                               ["ep", "other"], 1)
    del one["ep"]
    assert sorted(table) == ["0|ep", "1|other"]


def test_a_grown_episode_is_told_to_every_other_partition_once() -> None:
    ticks = Ticks()
    correlators = Correlators({}, ticks, 3)  # type: ignore[arg-type]

    async def handle(alert: Any, firing: dict[str, Any] | None) -> None:
        correlators.of(1).observe(alert)
        await correlators.tell(1, alert.episode_id, firing)

    asyncio.run(handle(record("gmv", "a", "14:00", "14:15"), FIRING))
    assert [p for p, _ in ticks.sent] == [0, 2]
    assert ticks.sent[0][1]["firing"] == FIRING
    assert ticks.sent[0][1]["peer"]["peer"]["episode_id"] == "a"
    asyncio.run(handle(record("gmv", "a", "14:00", "14:15"), FIRING))  # the same again
    assert len(ticks.sent) == 2
    asyncio.run(handle(record("gmv", "a", "14:00", "14:15", status="resolved", sequence=1),
                       None))  # the span is the same, but it no longer fires
    assert [(p, sent["firing"]) for p, sent in ticks.sent[2:]] == [(0, None), (2, None)]
    learned = Correlators({}, Ticks(), 3)  # type: ignore[arg-type]
    status = parse_status(orjson.dumps(ticks.sent[0][1]))
    assert status is not None and status.peer is not None
    learned.of(0).learn(status.peer)
    assert not learned.of(0).is_local("a") and learned.peers("a") == []


def test_a_status_a_crash_left_untold_is_told_by_the_next_tick() -> None:
    """Killed after the record's table writes, before the broker had its status: the tick
    (or the record handled again) tells it; what was told is not told again."""
    table: dict[str, Any] = {}
    correlators = Correlators(table, Ticks(), 2)  # type: ignore[arg-type]
    correlators.of(0).observe(record("gmv", "a", "14:00", "14:15"))  # ... then SIGKILL
    ticks = Ticks()
    restarted = Correlators(table, ticks, 2)  # type: ignore[arg-type]
    asyncio.run(restarted.tell_all(0, {"a": FIRING}))
    asyncio.run(restarted.tell_all(0, {"a": FIRING}))
    assert [(p, sent["firing"]) for p, sent in ticks.sent] == [(1, FIRING)]


def test_one_partition_tells_no_one() -> None:
    ticks = Ticks()
    correlators = Correlators({}, ticks, 1)  # type: ignore[arg-type]
    correlators.of(0).observe(record("gmv", "a", "14:00", "14:15"))
    asyncio.run(correlators.tell(0, "a", None))
    assert ticks.sent == []


def test_ticks_and_statuses_are_told_apart() -> None:
    assert parse_status(b"{}") is None
    told = parse_status(orjson.dumps({"peer": {"x": 1}, "firing": None}))
    assert told == Status({"x": 1}, None)


@pytest.mark.parametrize("value", [
    b"not json", orjson.dumps({"peer": []}),
    orjson.dumps({"peer": {}, "firing": {"metric": "gmv"}}),  # labels without severity, slice
])
def test_an_unreadable_status_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidEvent):
        parse_status(value)


def test_another_partitions_firing_alert_inhibits_here_until_it_resolves() -> None:
    inhibitor = Inhibitor((CRITICAL_OVER_WARNING,), {})
    warning = AlertLabels("gmv", "warning", {"region": "EU"})
    inhibitor.observe("crit", AlertLabels("gmv", "critical", {"region": "EU"}), firing=True)
    inhibitor.told("1|crit", "crit", FIRING)  # the same episode, told to partition 1 too
    inhibitor.told("1|crit-2", "crit-2", FIRING)
    assert inhibitor.inhibiting("warn", warning) == ["crit", "crit-2"]
    assert inhibitor.inhibiting("crit-2", warning) == ["crit"]  # never itself
    inhibitor.told("1|crit", "crit", None)
    inhibitor.told("1|crit-2", "crit-2", None)
    assert sorted(inhibitor.firing) == ["crit"]  # each copy deleted under its own key
