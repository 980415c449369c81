"""`live_ends` on the real broker: the offset after the last record, whatever the broker answers
to ListOffsets (Tansu answers the base offset of the last batch: runtime/ends.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream_guard.runtime.ends import live_ends
from stream_guard.runtime.resume import history

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, n: int, per_batch: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        for start in range(0, n, per_batch):
            sent = [await producer.send(topic, b"x" * 40, partition=0)
                    for _ in range(start, min(n, start + per_batch))]
            await asyncio.gather(*sent)  # one batch per round
    finally:
        await producer.stop()


async def _answered_end(bootstrap: str, tp: TopicPartition) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


def test_live_end_is_after_the_last_record_of_the_last_batch(
    bootstrap: str, topic_prefix: str,
) -> None:
    topic = topic_prefix + "ends"
    asyncio.run(_produce(bootstrap, topic, 1_000, 100))
    tp = TopicPartition(topic, 0)
    answered = asyncio.run(_answered_end(bootstrap, tp))
    assert asyncio.run(live_ends([bootstrap], {tp: answered})) == {tp: 1_000}
    assert asyncio.run(live_ends([bootstrap], {tp: None})) == {tp: 1_000}  # read from the start


def test_an_empty_partition_ends_at_zero(bootstrap: str, topic_prefix: str) -> None:
    topic = topic_prefix + "empty"
    asyncio.run(_produce(bootstrap, topic, 1, 1))
    tp = TopicPartition(topic, 0)
    assert asyncio.run(live_ends([bootstrap], {tp: 1})) == {tp: 1}


async def _produce_events(bootstrap: str, topic: str, times_s: list[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, orjson.dumps({"ts": _iso(t), "n": i}), partition=0)
                for i, t in enumerate(times_s)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_history_reads_back_past_the_horizon_and_no_further(
    bootstrap: str, topic_prefix: str,
) -> None:
    """One event a second for 50,000 s; a source resuming at 40,000 with a 3,600 s horizon
    re-reads at least the hour before it, in offset order, and far less than everything."""
    topic = topic_prefix + "history"
    base = 1_772_000_000
    asyncio.run(_produce_events(bootstrap, topic, [base + i for i in range(50_000)]))
    got = asyncio.run(history([bootstrap], {(topic, 0): 40_000}, 3_600_000))[(topic, 0)]
    offsets = [r.offset for r in got]
    assert offsets == list(range(offsets[0], 40_000))
    assert offsets[0] <= 40_000 - 3_600
    assert len(offsets) <= 16_000  # doubling chunks: 2k + 4k + 8k at most past the hour
    assert asyncio.run(history([bootstrap], {(topic, 0): 0}, 3_600_000)) == {(topic, 0): []}
