"""Helpers for running Faust apps on the embedded broker inside tests, and cleaning up after them.

Every app is started and stopped inside one `asyncio.run`, through `running()`, so no consumer
thread, task or socket outlives the test (pytest turns the warnings they cause into errors).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream_guard.runtime.bulk import RawSchema
from stream_guard.runtime.transport import broker_url

# The broker holds JoinGroup for session_timeout / 2: 3 s makes a join take ~1.5 s (Faust: 60 s),
# and a restarted app of the same group rejoins in ~5 s instead of ~15 s with 6 s. Three
# heartbeats per session: no spurious rebalance seen in 6 runs of this module and
# test_notifier.py on two xdist workers, one with both cores also kept busy.
SESSION_TIMEOUT_S = 3.0
HEARTBEAT_S = 1.0


def value_for(partition: int, index: int) -> bytes:
    """The payload of the `index`-th message produced to `partition`."""
    return f"p{partition}-{index}".encode()


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, partitions: int, start: int, count: int) -> None:
    """Send messages `start..start+count-1` to every partition (payloads from `value_for`)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, value_for(p, i), partition=p)
            for i in range(start, start + count)
            for p in range(partitions)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1 where nothing is committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        offsets = {}
        for p in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, p))
            offsets[p] = -1 if offset is None else offset
        return offsets
    finally:
        await consumer.stop()


def new_app(bootstrap: str, group: str, **settings: Any) -> faust.App:
    """A worker app on stream_guard's transport with test-friendly timings."""
    defaults: dict[str, Any] = {
        "broker": broker_url(bootstrap),
        "store": "memory://",
        "web_enabled": False,
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": HEARTBEAT_S,
        "broker_commit_interval": 0.5,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
        # Faust's default datadir is "<id>-data" in the working directory: the repo root
        "datadir": str(Path(tempfile.gettempdir()) / f"stream-guard-{group}-data"),
    }
    return faust.App(group, **{**defaults, **settings})


@dataclass
class Recorder:
    """What an agent saw: (offset, value) per partition, and offsets per (partition, generation)."""

    seen: dict[int, list[tuple[int, bytes]]] = field(default_factory=lambda: defaultdict(list))
    by_generation: dict[tuple[int, int], list[int]] = field(
        default_factory=lambda: defaultdict(list)
    )
    total: int = 0
    _waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def add(self, partition: int, offset: int, value: bytes, generation: int = 0) -> None:
        self.seen[partition].append((offset, value))
        self.by_generation[partition, generation].append(offset)
        self.total += 1
        for target, event in self._waiters:
            if self.total >= target:
                event.set()

    async def wait_for(self, total: int, timeout: float) -> None:
        event = asyncio.Event()
        self._waiters.append((total, event))
        if self.total >= total:
            event.set()
        await asyncio.wait_for(event.wait(), timeout)

    def offsets(self, partition: int) -> list[int]:
        return [offset for offset, _ in self.seen[partition]]


def recording_agent(
    app: faust.App,
    topic: str,
    recorder: Recorder,
    per_event: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Declare an agent on `topic` that records every event (after awaiting `per_event`)."""
    channel = app.topic(topic, value_serializer="raw")

    @app.agent(channel)
    async def record(stream: Any) -> None:
        async for event in stream.events():
            if per_event is not None:
                await per_event()
            message = event.message
            recorder.add(message.partition, message.offset, event.value, message.generation_id)


def bulk_recording_agent(
    app: faust.App, topic: str, recorder: Recorder, batches: list[int], max_: int, within: float
) -> None:
    """Declare an agent on `topic` that takes events with `BulkStream.take_bulk` (the app must
    use ``Stream=BulkStream``), records every event, then acks the batch; `batches` gets the
    size of each batch."""
    channel = app.topic(topic, schema=RawSchema())

    @app.agent(channel)
    async def record_bulk(stream: Any) -> None:
        async for batch in stream.take_bulk(max_, within):
            batches.append(len(batch))
            for event in batch:
                message = event.message
                recorder.add(message.partition, message.offset, event.value,
                             message.generation_id)
            for event in batch:
                event.ack()


@asynccontextmanager
async def running(*apps: faust.App) -> AsyncIterator[None]:
    """Start the apps (finalized here), yield, and stop them in reverse order even on failure."""
    started: list[faust.App] = []
    try:
        for app in apps:
            app.finalize()
            await app.start()
            started.append(app)
        yield
    finally:
        for app in reversed(started):
            await app.stop()


def lingering_threads(before: Iterable[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not alive in `before`."""
    known = set(before)
    return [t for t in threading.enumerate() if t not in known and t.is_alive()]
