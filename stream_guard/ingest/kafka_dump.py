"""Dumping topics to a record dump by event-time range: the input of a backtest or a replay.

Events with ``start_ms <= event time < end_ms`` are written, one per line, each with its own key
(a batched message is written as its events). The event time is the value's ``ts``, else the
Kafka timestamp. Topics are named without their prefix in the dump, so a dump taken from an
isolated run can be produced again under any prefix.

Where reading starts and stops, and why it does not trust the broker blindly:

- Start: the broker's time index (`offsets_for_times`) at ``start_ms``. That is exact when a
  message's timestamp is at least the time of its events, as `produce` stamps them (the event
  time; the latest one for a batch) and as a live producer does (the time it sent the event).
  The answer is used only if the record it points at carries the timestamp the broker reported:
  the embedded broker (Tansu) indexes by *append* time, not by the records' timestamps, and
  answers "no such record" with offset 0 and timestamp -1; such partitions are read from their
  beginning.
- Stop: a partition is done when a message's events are all later than ``end_ms + grace_ms``,
  or when it is drained. Drained cannot mean "reached `end_offsets`": Tansu reports the base
  offset of the last record batch as the end (964 for 1,000 records). A partition is drained
  when a poll returns nothing for `IDLE_POLL_MS` and its position is at or past that figure.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from stream_guard.clock import Clock, SystemClock
from stream_guard.ingest.kafka import (
    KafkaConsumer,
    KafkaError,
    KafkaToolError,
    TopicPartition,
    consumer,
    topic_name,
)
from stream_guard.ingest.kafka_batch import event_time, unpack

__all__ = ["DumpStats", "RangeReader", "dump_line", "dump_range"]

GRACE_MS = 5 * 60_000
"""How far out of order events may sit in a partition (the metrics' lateness is 2 minutes): a
partition is read until its events are this much later than the end of the range."""

FETCH_WAIT_MS = 50
"""Tansu holds a fetch for about half of fetch_max_wait even when data is ready, so the client
default (500 ms) would cost ~250 ms per round trip; 50 ms keeps round trips short."""

IDLE_POLL_MS = 500
"""A poll that returns nothing for this long means the assigned partitions are drained: ten
fetch waits, far above the ~25 ms a loaded local broker takes to answer."""

STALL_S = 10.0
"""Nothing for this long while a partition is still short of its end offset is an error."""

CONSUMER_TUNING: dict[str, Any] = {
    "fetch_max_wait_ms": FETCH_WAIT_MS,
    "max_poll_records": 10_000,  # fewer Python-level poll round trips on a big dump
    "auto_offset_reset": "earliest",
}

PROGRESS_EVERY = 5_000
"""Messages between progress callbacks."""

Row = tuple[str, "str | None", Any]  # (logical topic, key, event value or raw bytes)


@dataclass(frozen=True, slots=True)
class DumpStats:
    records: int  # events written
    messages: int  # Kafka messages read (a batched message holds many events)
    partitions: int
    rescanned: int  # partitions read from their beginning: the time index did not hold
    seconds: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def dump_line(topic: str, key: str | None, value: Any) -> bytes:
    """One line of a record dump (`value_raw` for a payload that was not JSON, as iter_dump reads).

    >>> dump_line("orders", "s1", {"ts": 1})
    b'{"topic":"orders","key":"s1","value":{"ts":1}}\\n'
    >>> dump_line("orders", None, b"not json")
    b'{"topic":"orders","key":null,"value_raw":"not json"}\\n'
    """
    if isinstance(value, bytes):
        row = {"topic": topic, "key": key, "value_raw": value.decode("utf-8", "replace")}
    else:
        row = {"topic": topic, "key": key, "value": value}
    return orjson.dumps(row) + b"\n"


class RangeReader:
    """Reads the partitions of `topics` (Kafka name -> name to report) from the range's start to
    its end, one event at a time. `client` is a kafka-python consumer without group; the reader
    assigns, seeks and pauses it. `messages` and `rescanned` count what it did.
    """

    def __init__(self, client: KafkaConsumer, topics: dict[str, str], start_ms: int,
                 end_ms: int, grace_ms: int, clock: Clock) -> None:
        self.client = client
        self.logical = topics  # kafka topic -> topic name in the dump
        self.start_ms, self.end_ms, self.grace_ms = start_ms, end_ms, grace_ms
        self.clock = clock
        self.tps = self._assign()
        self.beginnings: dict[TopicPartition, int] = client.beginning_offsets(self.tps)
        # A lower bound of the true end on Tansu (base offset of the last batch); exact on Kafka.
        self.ends: dict[TopicPartition, int] = client.end_offsets(self.tps)
        self.unverified: dict[TopicPartition, tuple[int, int]] = {}
        self.done: set[TopicPartition] = set()
        self.messages = self.rescanned = 0

    def _assign(self) -> list[TopicPartition]:
        existing = self.client.topics()
        missing = sorted(set(self.logical) - existing)
        if missing:
            raise KafkaToolError(f"no such topics: {', '.join(missing)}")
        tps = [TopicPartition(t, p) for t in self.logical
               for p in sorted(self.client.partitions_for_topic(t) or ())]
        self.client.assign(tps)
        return tps

    def _seek_start(self) -> None:
        found = self.client.offsets_for_times({tp: self.start_ms for tp in self.tps})
        for tp in self.tps:
            hit = found.get(tp)
            if hit is None:  # Kafka: no record at or after the target time
                self._finish(tp)
            elif hit.timestamp < 0:  # Tansu's "none": its index is by append time; scan
                self.rescanned += 1
                self.client.seek(tp, self.beginnings[tp])
            else:
                self.client.seek(tp, hit.offset)
                self.unverified[tp] = (hit.offset, hit.timestamp)

    def _finish(self, tp: TopicPartition) -> None:
        self.done.add(tp)
        self.client.pause(tp)

    def rows(self) -> Iterator[Row]:
        """The events in range, partition by partition as they arrive, until all are done."""
        self._seek_start()
        quiet_since: float | None = None
        while len(self.done) < len(self.tps):
            polled = self.client.poll(timeout_ms=IDLE_POLL_MS)
            if polled:
                quiet_since = None
                for tp, messages in polled.items():
                    yield from self._take(tp, messages)
            elif self._drained():
                return
            else:
                if quiet_since is None:
                    quiet_since = self.clock.monotonic()
                if self.clock.monotonic() - quiet_since > STALL_S:
                    raise KafkaToolError(f"no data for {STALL_S:.0f} s from partitions short "
                                         f"of their end offsets: {self._short()}")

    def _take(self, tp: TopicPartition, messages: Sequence[Any]) -> Iterator[Row]:
        if tp in self.done:
            return
        expected = self.unverified.pop(tp, None)
        if expected is not None and (messages[0].offset, messages[0].timestamp) != expected:
            # The time index is not by record timestamp: read the partition from its beginning
            # (these messages, when they are that beginning already).
            self.rescanned += 1
            if messages[0].offset != self.beginnings[tp]:
                self.client.seek(tp, self.beginnings[tp])
                return
        topic = self.logical[tp.topic]
        for m in messages:
            self.messages += 1
            key = m.key.decode("utf-8", "replace") if m.key is not None else None
            events = unpack(m.value, key, m.headers)
            times = [event_time(value) or m.timestamp for _, value in events]
            for (k, value), t in zip(events, times, strict=True):
                if self.start_ms <= t < self.end_ms:
                    yield topic, k, value
            if min(times) > self.end_ms + self.grace_ms:
                self._finish(tp)
                return

    def _drained(self) -> bool:
        return not self._short()

    def _short(self) -> list[TopicPartition]:
        return [tp for tp in self.tps
                if tp not in self.done and self.client.position(tp) < self.ends[tp]]


def _open_output(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":  # as iter_dump reads it
        return gzip.open(path, "wb")  # type: ignore[return-value]  # GzipFile is a binary IO
    return path.open("wb")


def dump_range(
    bootstrap: str,
    topics: Sequence[str],
    start_ms: int,
    end_ms: int,
    output: Path,
    *,
    prefix: str = "",
    grace_ms: int = GRACE_MS,
    clock: Clock | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> DumpStats:
    """Writes the events of `topics` with event time in [start_ms, end_ms) to `output`."""
    if end_ms <= start_ms:
        raise ValueError(f"empty time range: {start_ms} .. {end_ms}")
    clock = clock or SystemClock()
    started = clock.monotonic()
    names = {topic_name(t, prefix): t for t in topics}
    written = 0
    try:
        with consumer(bootstrap, **CONSUMER_TUNING) as client, _open_output(output) as out:
            reader = RangeReader(client, names, start_ms, end_ms, grace_ms, clock)
            for topic, key, value in reader.rows():
                out.write(dump_line(topic, key, value))
                written += 1
                if on_progress is not None and written % PROGRESS_EVERY == 0:
                    on_progress(written)
    except KafkaError as exc:
        raise KafkaToolError(f"dumping from {bootstrap} failed: {exc}") from exc
    if on_progress is not None:
        on_progress(written)
    return DumpStats(written, reader.messages, len(reader.tps), reader.rescanned,
                     clock.monotonic() - started)
