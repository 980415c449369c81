"""Packing events into messages per partition, and unpacking them with their keys."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream_guard.ingest.kafka_batch import (
    KEYS_HEADER,
    Batcher,
    Message,
    event_time,
    partition_for,
    unpack,
)

PARTITIONS = 4


def _batcher(size: int) -> Batcher:
    return Batcher(size, partitions_of=lambda topic: PARTITIONS)


def _keys_on_partition(partition: int, n: int) -> list[str]:
    keys = (f"seller-{i}" for i in range(10_000))
    return [k for k in keys if partition_for(k.encode(), PARTITIONS) == partition][:n]


def _unpacked(messages: list[Message]) -> list[tuple[str | None, Any]]:
    return [pair for m in messages for pair in unpack(m.value, _key(m), m.headers)]


def _key(m: Message) -> str | None:
    return m.key.decode() if m.key is not None else None


def test_partition_for_agrees_with_aiokafka_and_so_with_faust() -> None:
    faust_partitioner = DefaultPartitioner()
    for i in range(500):
        key = f"seller-{i}".encode()
        expected = faust_partitioner(key, list(range(PARTITIONS)), list(range(PARTITIONS)))
        assert partition_for(key, PARTITIONS) == expected


def test_a_batch_leaves_when_full_as_a_json_array_on_the_partition_of_its_keys() -> None:
    batcher = _batcher(3)
    a, b = _keys_on_partition(2, 2)
    assert batcher.add("orders", a, {"ts": 1}, 1) == []
    assert batcher.add("orders", b, {"ts": 5}, 5) == []
    [message] = batcher.add("orders", a, {"ts": 3}, 3)
    assert (message.topic, message.partition, message.key) == ("orders", 2, a.encode())
    assert orjson.loads(message.value) == [{"ts": 1}, {"ts": 5}, {"ts": 3}]
    assert message.events == 3 and message.timestamp_ms == 5  # the latest event time
    assert dict(message.headers)[KEYS_HEADER] == orjson.dumps([a, b, a])
    assert batcher.flush() == []


def test_partitions_and_topics_fill_separate_batches() -> None:
    batcher = _batcher(2)
    [p0] = _keys_on_partition(0, 1)
    [p1] = _keys_on_partition(1, 1)
    assert batcher.add("orders", p0, {"i": 1}, None) == []
    assert batcher.add("orders", p1, {"i": 2}, None) == []
    assert batcher.add("complaints", p0, {"i": 3}, None) == []
    [full] = batcher.add("orders", p0, {"i": 4}, None)
    assert full.partition == 0 and full.events == 2
    rest = batcher.flush()
    assert sorted((m.topic, m.partition) for m in rest) == [("complaints", 0), ("orders", 1)]


def test_one_key_needs_no_header_and_a_batch_of_one_is_a_plain_event() -> None:
    batcher = _batcher(10)
    batcher.add("orders", "s1", {"i": 1}, 5)
    batcher.add("orders", "s1", {"i": 2}, 6)
    [two] = batcher.flush()
    assert two.headers == [] and two.events == 2
    batcher.add("orders", "s1", {"i": 3}, 7)
    [one] = batcher.flush()
    assert orjson.loads(one.value) == {"i": 3} and one.events == 1


def test_values_that_are_not_objects_go_alone_after_their_partition_batch() -> None:
    batcher = _batcher(10)
    batcher.add("orders", "s1", {"i": 1}, 1)
    out = batcher.add("orders", "s1", b"not json", 2)
    assert [m.value for m in out] == [b'{"i":1}', b"not json"]
    assert [m.events for m in out] == [1, 1]


def test_events_without_key_are_batched_without_a_partition() -> None:
    batcher = _batcher(2)
    batcher.add("orders", None, {"i": 1}, None)
    [m] = batcher.add("orders", None, {"i": 2}, None)
    assert m.key is None and m.partition is None and m.headers == []


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _batcher(0)


def test_unpacking_gives_back_every_event_with_its_own_key() -> None:
    batcher = _batcher(4)
    events = [(k, {"n": i}) for i, k in enumerate(_keys_on_partition(3, 3) * 3)]
    messages = [m for k, v in events for m in batcher.add("orders", k, v, None)]
    messages += batcher.flush()
    assert len(messages) == 3
    assert _unpacked(messages) == events


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"a": 1}', [("k", {"a": 1})]),
    (b'[{"a": 1}, {"a": 2}]', [("k", {"a": 1}), ("k", {"a": 2})]),
    (b'{"a": 1}\n{"a": 2}\n', [("k", {"a": 1}), ("k", {"a": 2})]),  # JSONL, as the codec reads
    (b"\xffnot json", [("k", b"\xffnot json")]),
    (None, [("k", None)]),  # a tombstone
])
def test_unpack_reads_what_the_codec_reads(value: bytes | None, expected: list[Any]) -> None:
    assert unpack(value, "k") == expected


def test_a_keys_header_of_the_wrong_length_is_ignored() -> None:
    headers = [(KEYS_HEADER, b'["a"]')]
    assert unpack(b"[1, 2]", "k", headers) == [("k", 1), ("k", 2)]


@pytest.mark.parametrize(("value", "expected"), [
    ({"ts": 1_772_409_600_000}, 1_772_409_600_000),
    ({"ts": "2026-03-02T00:00:00+00:00"}, 1_772_409_600_000),
    ({"ts": "2026-03-02T00:00:00"}, None),  # no zone: not an event time
    ({"no_ts": 1}, None),
    ([1, 2], None),
    (b"raw", None),
])
def test_event_time(value: Any, expected: int | None) -> None:
    assert event_time(value) == expected
