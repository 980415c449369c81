"""The Faust worker: thin agents around the pure pieces (sources.py, owner.py, the engine).

Topology (DESIGN.md, "runtime/"):

    event topics ──▶ agent `sources` (per partition: decode, validate, window deltas)
        │  invalid records ──▶ dead_letters (key: topic)
        ▼  one Report per metric and batch
    partials (keyed by metric) ──▶ agent `owners` (merge, close, detect, explain, episodes)
        │  state: table `owner-state` (per metric: open windows + model), changelog-backed
        ▼
    alerts (keyed by fingerprint) ──▶ notifier agent (runtime/notifier.py, when Slack is set)

Why these shapes (the per-message cost of Faust is what a worker's throughput is made of):
- `sources` takes events in batches (`BulkStream.take_bulk`, runtime/bulk.py: everything queued at
  once, not one stream iteration per event) and acknowledges a batch only after its reports and
  dead letters were handed to the producer: a crash replays the batch, never loses it
  (at-least-once). A batch replayed after its reports were sent does not count twice: reports
  carry their offsets, a resumed partition is cut where it was cut before (runtime/resume.py)
  and the owner drops what it has merged (runtime/owner.py, "Crash safety"). Faust's
  `processing_guarantee="exactly_once"` (Kafka transactions) is not used: the dev broker lacks
  it and faust-streaming's implementation has open duplicate/crash issues.
- Table values are versioned snapshots (runtime/snapshot.py) in base64 text: Faust restores a
  changelog with the table's own serializer (JSON for plain types), whatever schema wrote it, so
  raw bytes could be written but never read back. runtime/checkpoint.py owns the write order.
- Tables are written once per closed window and once per SAVE_EVERY reports or tick, never per
  event.
- Wall-clock work (idle sources) reaches the owner as Tick messages on the partials topic, so all
  table writes happen while processing a message of the table's partition, as Faust requires.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.types import TP

from stream_guard.aggregate.source import SourceStage
from stream_guard.clock import Clock, SystemClock
from stream_guard.config.calendar import load_calendar
from stream_guard.config.rules import load_rules
from stream_guard.config.topics import TopicSpec, load_topics
from stream_guard.engine import Engine
from stream_guard.ingest.arrival import MAX_SKEW_MS
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.ingest.kafka_batch import partition_for
from stream_guard.observability.metrics import RuntimeMetrics, Server
from stream_guard.runtime.bulk import BulkStream, RawSchema
from stream_guard.runtime.checkpoint import SAVE_EVERY, Checkpoint
from stream_guard.runtime.notifier import NotifierSettings, install_notifier
from stream_guard.runtime.owner import Closed, Owner
from stream_guard.runtime.reports import NO_WATERMARK, Report, decode, encode, encode_tick
from stream_guard.runtime.resume import history, reported_offsets
from stream_guard.runtime.settings import WorkerSettings
from stream_guard.runtime.sources import SourcePool, expected_sources, source_name
from stream_guard.runtime.transport import broker_url
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord

__all__ = ["PARTIALS_TOPIC", "Runtime", "build_runtime", "run_worker"]

log = logging.getLogger(__name__)

PARTIALS_TOPIC = "partials"
ALERTS_TOPIC = "alerts"
DEAD_LETTERS_TOPIC = "dead_letters"
CONTROL_TOPIC = "control"
NOTIFIER_TICKS_TOPIC = "notifier_ticks"
TICK_S = 0.5
GC_THRESHOLDS = (10_000, 20, 50)
"""The worker's `gc.set_threshold` (CPython's default: 700, 10, 10). Why: draining a backlog of
single-event messages, CPython's cyclic GC took about half of the event loop's time (gc callbacks:
~2.4 s in 14 full collections of ~170 ms each, for ~6 s of draining; 22k events/s, 42k with the
GC off). Nearly every object a message makes (records, Faust messages and events, decoded values)
dies young but outlives a 700-allocation generation while it waits in fetch and stream buffers, so
it is promoted and then walked by full collections. With these thresholds young collections are
rarer than a buffer's turnover and full ones run at most every ~10M allocations: 42k events/s,
the cycles that do form (asyncio futures, exceptions) are still collected."""


@dataclass
class Runtime:
    """One worker: the Faust app and what its agents share (for the CLI, the demo and tests)."""

    app: faust.App
    settings: WorkerSettings
    metrics: RuntimeMetrics
    pool: SourcePool
    owner: Owner
    topics: dict[str, TopicSpec]
    server: Server | None = None

    def topic_name(self, logical: str) -> str:
        return self.settings.topic_prefix + logical


def build_runtime(
    settings: WorkerSettings, clock: Clock | None = None, metrics: RuntimeMetrics | None = None,
    notifier: NotifierSettings | None = None,
) -> Runtime:
    """Loads rules and topics (ConfigError if broken) and declares the app's agents and tables;
    with `notifier`, also the Slack notifier (runtime/notifier.py) on the alerts topic."""
    clock = clock or SystemClock()
    topics = load_topics(settings.topics)
    rules = load_rules(settings.rules, topics)
    calendar = load_calendar(settings.rules / "calendar.yaml")
    codec = Codec(topics)
    dead: list[DeadLetter] = []
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), dead.append),
                      [r.metric for r in rules])
    partitions = {name: spec.partitions for name, spec in topics.items()}
    metrics = metrics or RuntimeMetrics()
    metrics.expect({r.metric: [s.topic for s in r.sources] for r in rules}, codec.event_topics)
    engine = Engine(rules, calendar, on_score=metrics.observe)  # scores and business gauges
    owner = Owner(engine, expected_sources(rules, partitions),
                  int(settings.idle_after.total_seconds() * 1000))
    metrics.track_stats(lambda: [*pool.stats(), owner.engine.stats])

    app = faust.App(
        settings.app_id,
        broker=broker_url(settings.bootstrap),
        store=settings.store,
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_enabled=True,
        broker_session_timeout=settings.session_timeout.total_seconds(),
        broker_heartbeat_interval=min(3.0, settings.session_timeout.total_seconds() / 4),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=8 * 1024 * 1024,
        topic_partitions=topics[PARTIALS_TOPIC].partitions,
        logging_config=None,
        Stream=BulkStream,
    )
    rt = Runtime(app, settings, metrics, pool, owner, topics)
    prefix = settings.topic_prefix
    logical = {prefix + name: name for name in codec.event_topics}

    def topic(name: str) -> faust.TopicT:
        return app.topic(prefix + name, key_serializer="raw", value_serializer="raw",
                         partitions=topics[name].partitions)

    events = app.topic(*sorted(logical), schema=RawSchema())
    partials, alerts, dead_letters = topic(PARTIALS_TOPIC), topic(ALERTS_TOPIC), topic(
        DEAD_LETTERS_TOPIC)
    state = app.Table("owner-state", default=None, partitions=topics[PARTIALS_TOPIC].partitions,
                      key_type=str, value_type=str)
    flush_s = settings.flush_interval.total_seconds()

    horizon_ms = pool.horizon_ms() + MAX_SKEW_MS  # what a resumed source re-reads (resume.py)

    async def resume(batch: list[Any]) -> None:
        """Partitions this worker has no source for yet (newly assigned): re-read what their
        previous consumer read (`history`) and cut their first reports where it cut them.

        Told by the pool, not by Faust's on_partitions_assigned signal: after a table recovery
        the streams resume, and deliver, before that signal is sent."""
        firsts: dict[tuple[str, int], int] = {}
        for event in batch:
            msg = event.message
            key = (logical[msg.topic], msg.partition)
            if key not in pool:
                firsts.setdefault(key, msg.offset)
        if not firsts:
            return
        bootstrap = settings.bootstrap.split(",")
        log.info("resuming %s", ", ".join(f"{source_name(*tp)} at {first}"
                                          for tp, first in sorted(firsts.items())))
        cuts = await reported_offsets(bootstrap, partials.get_topic_name(),
                                      {source_name(*tp): first for tp, first in firsts.items()})
        past = await history(
            bootstrap, {(prefix + t, p): first for (t, p), first in firsts.items()}, horizon_ms)
        log.info("re-reading %s", ", ".join(f"{len(records)} records of {topic}/{partition}"
                                            for (topic, partition), records in past.items()))
        for tp in firsts:  # (Faust's timestamps are r.timestamp / 1000: the same arrival)
            pool.warm(*tp, ((r.offset, r.value, _arrival_ms(r.timestamp / 1000))
                            for r in past[(prefix + tp[0], tp[1])]))
            pool.resume(*tp, cuts[source_name(*tp)])
        log.info("resumed %s", "; ".join(
            f"{source_name(*tp)} at {first}, cut at {cuts[source_name(*tp)]}"
            for tp, first in sorted(firsts.items())))

    @app.agent(events, name="sources")
    async def sources(stream: Any) -> None:
        async for batch in stream.take_bulk(settings.batch_max, flush_s):
            await resume(batch)
            for event in batch:
                msg = event.message
                pool.ingest(logical[msg.topic], msg.partition, msg.offset, event.value,
                            _arrival_ms(msg.timestamp))
            now = clock.now_ms()
            for dl in dead:
                await dead_letters.send(key=dl.topic.encode(), value=orjson.dumps(dl.to_json()))
            dead.clear()
            reports = pool.reports(now)
            for r in reports:
                await partials.send(key=r.metric.encode(), value=encode(r))
            _lag(metrics, reports, now)
            for event in batch:
                event.ack()

    async def publish(records: list[AlertRecord]) -> None:
        await _publish(rt, alerts, records)
        metrics.observe_alerts(records)  # open episodes per metric

    n_partials = topics[PARTIALS_TOPIC].partitions

    def siblings(metric: str) -> list[str]:
        """The metrics keyed to the same partials partition as `metric` (murmur2, as Faust)."""
        home = partition_for(metric.encode(), n_partials)
        return [r.metric for r in rules if partition_for(r.metric.encode(), n_partials) == home]

    checkpoint = Checkpoint(owner, state, publish, SAVE_EVERY, siblings)

    @app.agent(partials, name="owners")
    async def owners(stream: Any) -> None:
        async for event in stream.noack().events():
            msg = decode(event.value)
            adopting = [m for m in siblings(msg.metric) if not owner.owns(m)]
            closed = await checkpoint.step(msg, event.ack)
            for metric in adopting:
                _log_adopted(owner, metric)
            _observe(rt, closed, clock)

    async def extents() -> dict[str, tuple[int, int]]:
        """(end, first offset) of every event partition this worker consumes: an owner calls a
        source caught up once it has merged reports up to the end (runtime/owner.py)."""
        tps = [tp for tp in app.consumer.assignment() if tp.topic in logical]
        firsts = await app.consumer.earliest_offsets(*tps) if tps else {}
        status: dict[str, tuple[int, int]] = {}
        for tp in tps:
            end = app.consumer.highwater(tp)
            if end is not None and firsts.get(tp) is not None:
                status[source_name(logical[tp.topic], tp.partition)] = (end, firsts[tp])
        return status

    @app.timer(TICK_S)
    async def tick() -> None:
        status = await extents()
        for r in rules:
            await partials.send(key=r.metric.encode(),
                                value=encode_tick(r.metric, clock.now_ms(), status))

    async def on_revoked(_app: Any, revoked: set[TP], **_: Any) -> None:
        gone = [(logical[tp.topic], tp.partition) for tp in revoked if tp.topic in logical]
        for stats in pool.forget(gone):
            metrics.retire(stats)
        if any(tp.topic == prefix + PARTIALS_TOPIC for tp in revoked):
            checkpoint.revoke()

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode's stub
    if notifier is not None:
        handles = install_notifier(app, alerts, topic(NOTIFIER_TICKS_TOPIC), topic(CONTROL_TOPIC),
                                   notifier)
        metrics.track_notifier(lambda: [handles.notifier.stats, handles.stats])
        metrics.track_control(lambda: [handles.control])  # feedback answers, refused records
    return rt


async def _publish(rt: Runtime, alerts: faust.TopicT, records: list[AlertRecord]) -> None:
    """Alert records onto their topic, delivered (acknowledged by the broker) on return."""
    sent = [await alerts.send(key=record.fingerprint.encode(), value=record.to_json())
            for record in records]
    for record, delivery in zip(records, sent, strict=True):
        await delivery
        log.info("alert %s %s %s %s", record.status, record.severity, record.metric,
                 record.fingerprint)


def _log_adopted(owner: Owner, metric: str) -> None:
    st = owner.merger(metric).state
    log.info("owning %s: closed until %s, %d open windows, offsets merged %s",
             metric, st.closed_until, len(st.open), dict(sorted(st.covered.items())))


def _observe(rt: Runtime, closed: Closed, clock: Clock) -> None:
    """Close-to-alert latency and watermarks of the metrics whose windows closed; sources
    active or idle."""
    idle: dict[str, bool] = {}  # source -> idle for every merger that heard of it
    for merger in rt.owner.mergers.values():
        now_idle = merger.idle_sources()
        for source in merger.state.sources:
            idle[source] = idle.get(source, True) and source in now_idle
    rt.metrics.set_sources(active=sum(not v for v in idle.values()), idle=sum(idle.values()))
    for metric in closed.metrics:
        if closed.report_sent_ms is not None:
            rt.metrics.observe_alert_latency(
                metric, (clock.now_ms() - closed.report_sent_ms) / 1000)
        mark, _final = rt.owner.watermark(rt.owner.index[metric])
        if mark is not None:
            rt.metrics.set_watermark(metric, mark)


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


def _tune_gc() -> None:
    """`GC_THRESHOLDS`, and what was built so far (rules, topics, Faust) out of the collector's
    sight for good (`gc.freeze`): it lives as long as the process, full collections need not walk
    it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: WorkerSettings) -> int:
    """`stream-guard worker`: runs until SIGTERM/SIGINT."""
    from faust.worker import Worker

    notifier = None
    if os.environ.get("SLACK_BOT_TOKEN"):
        notifier = NotifierSettings.from_env(settings.rules / "routes.yaml")
    rt = build_runtime(settings, notifier=notifier)
    if settings.metrics_port >= 0:
        rt.server = rt.metrics.serve(settings.metrics_port)
        log.info("metrics on :%d/metrics", rt.server.port)
    worker = Worker(rt.app, loglevel=settings.log_level.upper(), quiet=True)
    _tune_gc()
    try:
        worker.execute_from_commandline()
    finally:
        if rt.server is not None:
            rt.server.close()
    return 0
