"""Reading a time range, against a fake consumer that behaves like Kafka or like Tansu.

The integration tests run against Tansu only; these cover the paths Tansu never takes (a time
index that can be trusted, a partition with nothing after the start) and pin down the stop rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest

from stream_guard.clock import ManualClock
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka import KafkaToolError, TopicPartition
from stream_guard.ingest.kafka_dump import STALL_S, RangeReader, dump_line

T0 = 1_772_409_600_000
SECOND = 1_000
TP = TopicPartition("p-orders", 0)


@dataclass(frozen=True)
class Rec:
    offset: int
    timestamp: int
    value: bytes
    key: bytes | None = b"s1"
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Hit:
    offset: int
    timestamp: int


class FakeConsumer:
    """The part of kafka-python's KafkaConsumer that RangeReader uses, over one partition.

    `index` picks how offsets_for_times answers: by record timestamp ("kafka"), or Tansu's way
    (by append time: offset 0 and a wall-clock timestamp, or offset 0 / timestamp -1).
    """

    def __init__(self, records: list[Rec], index: Literal["kafka", "tansu", "tansu-none"],
                 reported_end: int | None = None, batch: int = 3) -> None:
        self.records = records
        self.index = index
        self.reported_end = len(records) if reported_end is None else reported_end
        self.batch = batch
        self.pos = 0
        self.paused = False
        self.fetched = 0

    def topics(self) -> set[str]:
        return {TP.topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: list[TopicPartition]) -> None:
        assert tps == [TP]

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP: 0}

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {TP: self.reported_end}

    def offsets_for_times(self, targets: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
        if self.index == "tansu":
            return {TP: Hit(0, 9_000_000_000_000)}
        if self.index == "tansu-none":
            return {TP: Hit(0, -1)}
        later = [r for r in self.records if r.timestamp >= targets[TP]]
        return {TP: Hit(later[0].offset, later[0].timestamp) if later else None}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos = offset

    def pause(self, tp: TopicPartition) -> None:
        self.paused = True

    def position(self, tp: TopicPartition) -> int:
        return self.pos

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Rec]]:
        if self.paused or self.pos >= len(self.records):
            return {}
        out = self.records[self.pos:self.pos + self.batch]
        self.pos += len(out)
        self.fetched += len(out)
        return {TP: out}


def _log(n: int, step: int = 10 * SECOND) -> list[Rec]:
    """`n` single-event messages, `step` apart in event time (Kafka timestamp = event time)."""
    return [Rec(i, T0 + i * step, orjson.dumps({"i": i, "ts": T0 + i * step})) for i in range(n)]


def _read(client: FakeConsumer, start: int, end: int, grace: int = 0) -> list[int]:
    reader = RangeReader(client, {TP.topic: "orders"}, start, end, grace,
                         ManualClock(0))
    rows = list(reader.rows())
    assert all(topic == "orders" and key == "s1" for topic, key, _ in rows)
    return [value["i"] for _, _, value in rows]


def test_a_trusted_time_index_starts_and_stops_near_the_range() -> None:
    client = FakeConsumer(_log(100), "kafka")
    assert _read(client, T0 + 500 * SECOND, T0 + 600 * SECOND, grace=20 * SECOND) == list(
        range(50, 60))
    assert client.fetched < 20  # read from ~48 to ~62, not the whole log


@pytest.mark.parametrize("index", ["tansu", "tansu-none"])
def test_an_index_by_append_time_means_reading_from_the_beginning(index: Any) -> None:
    client = FakeConsumer(_log(100), index)
    assert _read(client, T0 + 500 * SECOND, T0 + 600 * SECOND) == list(range(50, 60))


def test_nothing_after_the_start_reads_nothing() -> None:
    client = FakeConsumer(_log(10), "kafka")
    assert _read(client, T0 + 3_600 * SECOND, T0 + 7_200 * SECOND) == []
    assert client.fetched == 0


def test_an_end_offset_short_of_the_true_end_still_reads_everything() -> None:
    client = FakeConsumer(_log(10), "tansu", reported_end=7)  # the base offset of a last batch
    assert _read(client, T0, T0 + 3_600 * SECOND) == list(range(10))


def test_out_of_order_events_within_the_grace_are_kept() -> None:
    log = _log(10)
    log[8] = Rec(8, T0 + 15 * SECOND, orjson.dumps({"i": 8, "ts": T0 + 15 * SECOND}))
    client = FakeConsumer(log, "kafka")
    assert _read(client, T0, T0 + 20 * SECOND, grace=60 * SECOND) == [0, 1, 8]


def test_a_batched_message_is_read_as_its_events_each_filtered_by_its_time() -> None:
    events = [{"i": i, "ts": T0 + i * SECOND} for i in range(6)]
    client = FakeConsumer([Rec(0, T0 + 5 * SECOND, orjson.dumps(events))], "kafka")  # as stamped
    assert _read(client, T0 + 2 * SECOND, T0 + 4 * SECOND) == [2, 3]


def test_a_partition_that_stops_short_of_its_end_is_an_error() -> None:
    class Stalled(FakeConsumer):
        def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Rec]]:
            clock.advance(timeout_ms)
            return {}

    clock = ManualClock(0)
    reader = RangeReader(Stalled(_log(5), "kafka"), {TP.topic: "orders"},
                         T0, T0 + 3_600 * SECOND, 0, clock)
    with pytest.raises(KafkaToolError, match="no data"):
        list(reader.rows())
    assert clock.now_ms() >= STALL_S * 1000


def test_dump_lines_read_back_as_they_were_written(tmp_path: Path) -> None:
    rows = [("orders", "s1", {"ts": 1, "x": [1, 2]}), ("orders", None, b"\x00raw")]
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"".join(dump_line(*row) for row in rows))
    assert [(r.topic, r.key, r.value) for r in iter_dump(path)] == rows
