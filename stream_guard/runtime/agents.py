"""The bodies of the worker's agents and timer, in data-flow order (declared in runtime/app.py).

1. `SourceAgent`, per batch of event messages: resume the partitions this worker has no source
   for yet (runtime/resume.py), ingest (runtime/sources.py → aggregate/source.py), send dead
   letters and one report per metric, then ack the batch;
2. `OwnerAgent`, per partials message: `Checkpoint.step` by the owner of the message's partition
   (merge, close, detect; alerts → models → windows → acks: runtime/checkpoint.py), then
   metrics;
3. `Ticker`, on a timer: a tick per partials partition (keyed by a metric homed there, for
   every owner of the partition's metrics) onto the partials topic, carrying the end offset of
   every event partition this worker consumes, so idleness is decided by the owner, in a stream
   event, as table writes require.

Each takes what it needs at construction: plain objects and Faust topics, no closures over
shared mutable state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
import orjson

from stream_guard.clock import Clock
from stream_guard.ingest.codec import DeadLetter
from stream_guard.observability.metrics import RuntimeMetrics
from stream_guard.runtime.checkpoint import Checkpoint, ReadLog
from stream_guard.runtime.cursor import read_gap
from stream_guard.runtime.owner import Closed, Owner, Owners
from stream_guard.runtime.reports import (
    NO_WATERMARK,
    Report,
    Tick,
    decode,
    encode,
    encode_tick,
)
from stream_guard.runtime.resume import history, read_range, reported_offsets
from stream_guard.runtime.sources import SourcePool, source_name
from stream_guard.types import AlertRecord

__all__ = ["OwnerAgent", "SourceAgent", "Ticker", "Topics", "partials_log", "publish"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Topics:
    """The worker's Faust topics and how their names map to logical topic names."""

    events: faust.TopicT
    partials: faust.TopicT
    alerts: faust.TopicT
    dead_letters: faust.TopicT
    logical: dict[str, str]  # broker topic name -> logical event topic name
    bootstrap: list[str]
    prefix: str


class SourceAgent:
    """Per batch of event messages: resume, ingest, dead letters, reports, ack."""

    def __init__(
        self, pool: SourcePool, dead: list[DeadLetter], topics: Topics, metrics: RuntimeMetrics,
        clock: Clock, horizon_ms: int,
    ) -> None:
        self.pool, self.dead, self.topics = pool, dead, topics
        self.metrics, self.clock, self.horizon_ms = metrics, clock, horizon_ms

    async def on_batch(self, batch: list[Any]) -> None:
        await self.resume(batch)
        logical, pool = self.topics.logical, self.pool
        for event in batch:
            msg = event.message
            topic = logical[msg.topic]
            expected = pool.expected(topic, msg.partition)
            if expected is not None and msg.offset != expected:
                if msg.offset < expected:
                    continue  # ingested already: redelivered after a rebalance
                await self._fill(topic, msg.partition, expected, msg.offset)
            pool.ingest(topic, msg.partition, msg.offset, event.value,
                        _arrival_ms(msg.timestamp))
        now = self.clock.now_ms()
        for dl in self.dead:
            await self.topics.dead_letters.send(key=dl.topic.encode(),
                                                value=orjson.dumps(dl.to_json()))
        self.dead.clear()
        reports = self.pool.reports(now)
        for r in reports:
            await self.topics.partials.send(key=r.metric.encode(), value=encode(r))
        _lag(self.metrics, reports, now)
        for event in batch:
            event.ack()

    async def _fill(self, topic: str, partition: int, lo: int, hi: int) -> None:
        """Ingests events [lo, hi) of a partition from the log: Faust's stream acks, without
        delivering them, events fetched around a rebalance (see runtime/checkpoint.py)."""
        name = self.topics.prefix + topic
        records = await read_gap(source_name(topic, partition), range(lo, hi), lambda a, b:
                                 read_range(self.topics.bootstrap, name, partition, a, b))
        for r in records:  # (aiokafka's timestamps are ms)
            self.pool.ingest(topic, partition, r.offset, r.value or b"", r.timestamp or None)

    async def resume(self, batch: list[Any]) -> None:
        """Partitions this worker has no source for yet (newly assigned): re-read what their
        previous consumer read (`history`) and cut their first reports where it cut them.

        Told by the pool, not by Faust's on_partitions_assigned signal: after a table recovery
        the streams resume, and deliver, before that signal is sent."""
        firsts: dict[tuple[str, int], int] = {}
        for event in batch:
            msg = event.message
            key = (self.topics.logical[msg.topic], msg.partition)
            if key not in self.pool:
                firsts.setdefault(key, msg.offset)
        if firsts:
            await self._resume(firsts)

    async def _resume(self, firsts: dict[tuple[str, int], int]) -> None:
        t, prefix = self.topics, self.topics.prefix
        log.info("resuming %s", ", ".join(f"{source_name(*tp)} at {first}"
                                          for tp, first in sorted(firsts.items())))
        reported = await reported_offsets(
            t.bootstrap, t.partials.get_topic_name(),
            {source_name(*tp): first for tp, first in firsts.items()})
        # reports ending before the first offset delivered: the events between were never
        # reported (skipped by Faust, then committed); start there, and `on_batch` reads them
        starts = {tp: _start(first, reported[source_name(*tp)].end)
                  for tp, first in firsts.items()}
        past = await history(
            t.bootstrap, {(prefix + tp, p): start for (tp, p), start in starts.items()},
            self.horizon_ms)
        log.info("re-reading %s", ", ".join(f"{len(records)} records of {topic}/{partition}"
                                            for (topic, partition), records in past.items()))
        for tp in firsts:  # (Faust's timestamps are r.timestamp / 1000: the same arrival)
            self.pool.warm(*tp, ((r.offset, r.value, _arrival_ms(r.timestamp / 1000))
                                 for r in past[(prefix + tp[0], tp[1])]))
            self.pool.resume(*tp, reported[source_name(*tp)].cuts, starts[tp])
        log.info("resumed %s", "; ".join(
            f"{source_name(*tp)} at {starts[tp]}, cut at {reported[source_name(*tp)].cuts}"
            for tp in sorted(firsts)))


def partials_log(topics: Topics) -> ReadLog:
    """Reads partials messages back from the topic (an owner's gap: runtime/checkpoint.py)."""
    async def read(partition: int, lo: int, hi: int) -> list[tuple[int, Report | Tick]]:
        records = await read_range(topics.bootstrap, topics.partials.get_topic_name(),
                                   partition, lo, hi)
        return [(r.offset, decode(r.value or b"")) for r in records]
    return read


class OwnerAgent:
    """Per partials message: the checkpointed step of its partition's owner, then metrics."""

    def __init__(self, checkpoint: Checkpoint, metrics: RuntimeMetrics, clock: Clock) -> None:
        self.checkpoint = checkpoint
        self.owners: Owners = checkpoint.owners
        self.metrics, self.clock = metrics, clock

    async def on_event(self, event: Any) -> None:
        msg = decode(event.value)
        at = (event.message.partition, event.message.offset)
        adopting = [m for m in self.owners.metrics(at[0]) if not self.owners.owns(m)]
        closed = await self.checkpoint.on_message(at, msg, event.ack)
        for metric in adopting:  # (none for a redelivered message)
            if (owner := self.owners.owner_of(metric)) is not None:
                _log_adopted(owner, metric)
        self._observe(closed)

    def _observe(self, closed: Closed) -> None:
        """Close-to-alert latency and watermarks of the metrics whose windows closed; sources
        active or idle."""
        idle: dict[str, bool] = {}  # source -> idle for every merger that heard of it
        for owner in self.owners:
            for merger in owner.mergers.values():
                now_idle = merger.idle_sources()
                for source in merger.state.sources:
                    idle[source] = idle.get(source, True) and source in now_idle
        self.metrics.set_sources(active=sum(not v for v in idle.values()), idle=sum(idle.values()))
        for metric in closed.metrics:
            if closed.report_sent_ms is not None:
                self.metrics.observe_alert_latency(
                    metric, (self.clock.now_ms() - closed.report_sent_ms) / 1000)
            holder = self.owners.owner_of(metric)
            mark = None if holder is None else holder.watermark(holder.index[metric])[0]
            if mark is not None:
                self.metrics.set_watermark(metric, mark)


class Ticker:
    """A tick per partials partition onto the partials topic, with each consumed partition's
    extent: keyed by the first metric homed there (`routes`: one per partition), it reaches
    the partition's owner, which applies it to all its metrics (runtime/owner.py `on_tick`).
    One per metric, as before, cost an idle worker of 100 metrics ~30% of a core."""

    def __init__(self, app: faust.App, topics: Topics, routes: list[str], clock: Clock) -> None:
        self.app, self.topics, self.routes, self.clock = app, topics, routes, clock

    async def tick(self) -> None:
        status = await self.extents()
        now = self.clock.now_ms()
        for metric in self.routes:
            await self.topics.partials.send(key=metric.encode(),
                                            value=encode_tick(metric, now, status))

    async def extents(self) -> dict[str, tuple[int, int]]:
        """(end, first offset) of every event partition this worker consumes: an owner calls a
        source caught up once it has merged reports up to the end (runtime/owner.py)."""
        consumer, logical = self.app.consumer, self.topics.logical
        tps = [tp for tp in consumer.assignment() if tp.topic in logical]
        firsts = await consumer.earliest_offsets(*tps) if tps else {}
        status: dict[str, tuple[int, int]] = {}
        for tp in tps:
            end = consumer.highwater(tp)
            if end is not None and firsts.get(tp) is not None:
                status[source_name(logical[tp.topic], tp.partition)] = (end, firsts[tp])
        return status


def _start(first: int, reported_until: int | None) -> int:
    """Where a resumed source starts: the first offset delivered, or before it where its
    reports end (the events between were never reported)."""
    return first if reported_until is None else min(first, reported_until)


async def publish(
    alerts: faust.TopicT, metrics: RuntimeMetrics, records: list[AlertRecord]
) -> None:
    """Alert records onto their topic, delivered (acknowledged by the broker) on return; then
    counted (open episodes per metric)."""
    sent = [await alerts.send(key=record.fingerprint.encode(), value=record.to_json())
            for record in records]
    for record, delivery in zip(records, sent, strict=True):
        await delivery
        log.info("alert %s %s %s %s", record.status, record.severity, record.metric,
                 record.fingerprint)
    metrics.observe_alerts(records)


def _log_adopted(owner: Owner, metric: str) -> None:
    st = owner.merger(metric).state
    log.info("owning %s: closed until %s, %d open windows, offsets merged %s",
             metric, st.closed_until, len(st.open), dict(sorted(st.covered.items())))


def _arrival_ms(timestamp: float | None) -> int | None:
    """A Kafka record's timestamp (Faust gives seconds) as epoch ms; None when absent."""
    return int(timestamp * 1000) if timestamp and timestamp > 0 else None


def _lag(metrics: RuntimeMetrics, reports: Iterable[Report], now_ms: int) -> None:
    latest: dict[str, int] = {}
    for r in reports:
        if r.watermark_ms == NO_WATERMARK:  # only invalid records so far: no event time
            continue
        topic = r.source.rsplit("/", 1)[0]
        latest[topic] = max(latest.get(topic, r.watermark_ms), r.watermark_ms)
    for topic, wm in latest.items():
        metrics.set_lag(topic, max(0.0, (now_ms - wm) / 1000))
