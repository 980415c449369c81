"""Producing a record dump to Kafka: keys kept, optionally paced by event time, optionally batched.

Each record goes to ``prefix + topic`` with its key, so it lands on the partition its key hashes to,
and with its event time as the Kafka timestamp, so a later dump by time range can seek with the
broker's time index -- except a record dated in the future of the stream (ingest/arrival.py): it is
stamped with its estimated arrival time instead, as a client with a skewed clock would send it, so
the worker refuses it as `future_timestamp` exactly where replay does. `speed` replays event time
that many times faster than wall time (60 = a minute per second); `batch` packs up to that many
events of one partition per message.

A topic missing on the broker is an error (`stream-guard topics create` makes them): brokers that
auto-create topics would give it a default partition count instead of the one in topics/.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from stream_guard.clock import Clock, SystemClock
from stream_guard.ingest.arrival import arrival_times, is_future
from stream_guard.ingest.files import DUMP_TOPIC, DumpRecord
from stream_guard.ingest.kafka import (
    KafkaAdminClient,
    KafkaError,
    KafkaProducer,
    KafkaToolError,
    admin_client,
    producer,
    topic_name,
)
from stream_guard.ingest.kafka_batch import Batcher, Message, event_time
from stream_guard.ingest.kafka_pacing import Pacer
from stream_guard.ingest.kafka_topics import partition_counts

__all__ = ["DEFAULT_COMPRESSION", "ProduceStats", "produce_dump"]

PRODUCER_TUNING: dict[str, Any] = {
    # Wait up to 5 ms to fill a request: negligible next to pacing resolution, and it lets the
    # client send hundreds of messages per request when the tool runs flat out.
    "linger_ms": 5,
    # 1 MiB per partition batch (default 16 KiB): fewer, larger requests when running flat out.
    "batch_size": 1 << 20,
    # A valid event may be large (a 1 MB free-text field): kafka-python's default request cap
    # (1 MiB) refused it and aborted the whole produce. The worker's producer allows 8 MiB too.
    "max_request_size": 8 << 20,
}

DEFAULT_COMPRESSION = "gzip"
"""kafka-python checksums every record batch with a pure-Python CRC32C (~11 MB/s here, unless the
optional `crc32c` package is installed), which capped uncompressed producing at ~30k events/s.
gzip (zlib, in C) shrinks JSON several times before that checksum: 55-90k events/s batched.
Every Kafka client (aiokafka/Faust included) reads gzip without extra packages."""

MIN_SLEEP_S = 0.001
"""Waits shorter than this are skipped: a sleep costs about as much, and the schedule is anchored,
so the next wait makes up for it."""

PROGRESS_EVERY = 1_000
"""Records between progress callbacks."""


@dataclass(frozen=True, slots=True)
class ProduceStats:
    events: int  # records sent (events, or raw payloads)
    messages: int  # Kafka messages they took (fewer when batching)
    skipped: int  # dump lines without a readable envelope
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class _Topics:
    """Partition counts of the topics met in the dump, asked once each; missing is an error."""

    def __init__(self, admin: KafkaAdminClient) -> None:
        self._admin = admin
        self._counts: dict[str, int] = {}

    def partitions(self, topic: str) -> int:
        if topic not in self._counts:
            found = partition_counts(self._admin, [topic])
            if topic not in found:
                raise KafkaToolError(
                    f"topic {topic!r} does not exist; create it first (stream-guard topics create)")
            self._counts[topic] = found[topic]
        return self._counts[topic]


class _Sender:
    """Sends messages and remembers the first delivery failure (kafka-python reports them only
    on the futures, and flush() does not raise)."""

    def __init__(self, client: KafkaProducer) -> None:
        self._client = client
        self.messages = 0
        self.events = 0
        self.error: Exception | None = None

    def send(self, messages: list[Message]) -> None:
        for m in messages:
            future = self._client.send(m.topic, value=m.value, key=m.key, partition=m.partition,
                                       timestamp_ms=m.timestamp_ms, headers=m.headers or None)
            future.add_errback(self._failed)
            self.messages += 1
            self.events += m.events

    def _failed(self, exc: Exception) -> None:
        if self.error is None:
            self.error = exc

    def finish(self) -> None:
        self._client.flush()
        if self.error is not None:
            raise KafkaToolError(f"delivery failed: {self.error}") from self.error


def produce_dump(
    bootstrap: str,
    records: Iterable[DumpRecord],
    *,
    prefix: str = "",
    speed: float | None = None,
    batch: int = 1,
    compression: str | None = DEFAULT_COMPRESSION,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceStats:
    """Sends every record of a dump; returns what it sent and how long it took."""
    clock = clock or SystemClock()
    pacer = Pacer(speed, clock) if speed else None
    started = clock.monotonic()
    skipped = read = 0
    last_ms: int | None = None
    tuning = PRODUCER_TUNING | {"compression_type": compression}
    with admin_client(bootstrap) as admin, producer(bootstrap, **tuning) as client:
        batcher = Batcher(batch, _Topics(admin).partitions)
        sender = _Sender(client)
        try:
            stamped = arrival_times(records, _record_time)
            for read, (record, arrival) in enumerate(stamped, 1):
                if record.topic == DUMP_TOPIC:
                    skipped += 1
                    continue
                ts = _stamp(event_time(record.value), arrival)
                wait = pacer.delay(ts) if pacer is not None and ts is not None else 0.0
                if wait >= MIN_SLEEP_S:
                    sender.send(batcher.flush())  # nothing waits in a batch while we sleep
                    sleep(wait)
                # A record without event time (a payload that is not JSON, a bad ts) happened
                # "now" in the replay: it is stamped with the last event time seen, so a dump
                # by time range finds it next to its neighbours rather than at wall-clock time.
                last_ms = ts if ts is not None else last_ms
                key = None if record.key is None else str(record.key)
                sender.send(batcher.add(topic_name(record.topic, prefix), key, record.value,
                                        last_ms))
                if on_progress is not None and read % PROGRESS_EVERY == 0:
                    on_progress(read)
            sender.send(batcher.flush())
        except KafkaError as exc:
            raise KafkaToolError(f"producing to {bootstrap} failed: {exc}") from exc
        sender.finish()
    if on_progress is not None:
        on_progress(read)
    return ProduceStats(sender.events, sender.messages, skipped, clock.monotonic() - started)


def _record_time(record: DumpRecord) -> int | None:
    return event_time(record.value)


def _stamp(ts: int | None, arrival: int | None) -> int | None:
    """A record's Kafka timestamp: its event time, or its arrival when it is dated after it by
    more than the allowed skew (or has no event time)."""
    return arrival if ts is None or is_future(ts, arrival) else ts
