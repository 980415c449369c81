"""The Faust worker: thin agents around the pure pieces (sources.py, owner.py, the engine).

Topology (DESIGN.md, "runtime/"):

    event topics ──▶ agent `sources` (per partition: decode, validate, window deltas)
        │  invalid records ──▶ dead_letters (key: topic)
        ▼  one Report per metric and batch
    partials (keyed by metric) ──▶ agent `owners`: per partials partition, the owner of the
        │  metrics homed there (merge, close, detect, explain, episodes: runtime/owner.py)
        │  state: table `owner-state` (per metric: open windows + model; per partition: the
        │  position), co-partitioned with partials: an owner's writes stay in its partition
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
- Tables are written once per HOLD windows a metric closes or SAVE_EVERY partials messages of a
  partition (runtime/checkpoint.py), never per event.
- Wall-clock work (idle sources) reaches the owner as Tick messages on the partials topic, so all
  table writes happen while processing a message of the table's partition, as Faust requires.
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from stream_guard.aggregate.source import GC_THRESHOLDS, SourceStage
from stream_guard.clock import Clock, SystemClock
from stream_guard.config.calendar import load_calendar
from stream_guard.config.rules import MetricRule, load_rules
from stream_guard.config.topics import TopicSpec, load_topics
from stream_guard.engine import Engine
from stream_guard.ingest.arrival import MAX_SKEW_MS
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.observability.metrics import RuntimeMetrics, Server
from stream_guard.runtime.agents import (
    OwnerAgent,
    SourceAgent,
    Ticker,
    Topics,
    partials_log,
    publish,
)
from stream_guard.runtime.bulk import BulkStream, RawSchema
from stream_guard.runtime.checkpoint import SAVE_EVERY, Checkpoint
from stream_guard.runtime.notifier import NotifierSettings, install_notifier
from stream_guard.runtime.owner import Owner, Owners
from stream_guard.runtime.settings import WorkerSettings
from stream_guard.runtime.sources import SourcePool, expected_sources
from stream_guard.runtime.transport import broker_url
from stream_guard.stats import EngineStats

__all__ = ["PARTIALS_TOPIC", "Runtime", "build_runtime", "run_worker"]

log = logging.getLogger(__name__)

PARTIALS_TOPIC = "partials"
ALERTS_TOPIC = "alerts"
DEAD_LETTERS_TOPIC = "dead_letters"
CONTROL_TOPIC = "control"
NOTIFIER_TICKS_TOPIC = "notifier_ticks"
TICK_S = 0.5


@dataclass
class Runtime:
    """One worker: the Faust app and what its agents share (for the CLI, the demo and tests)."""

    app: faust.App
    settings: WorkerSettings
    metrics: RuntimeMetrics
    pool: SourcePool
    owners: Owners
    topics: dict[str, TopicSpec]
    server: Server | None = None

    def topic_name(self, logical: str) -> str:
        return self.settings.topic_prefix + logical


@dataclass
class _Pieces:
    """The pure pieces a worker wires: rules and topics loaded, sources, the owners."""

    rules: list[MetricRule]
    topics: dict[str, TopicSpec]
    codec: Codec
    pool: SourcePool
    dead: list[DeadLetter]
    owners: Owners
    metrics: RuntimeMetrics

    @classmethod
    def load(cls, settings: WorkerSettings, metrics: RuntimeMetrics) -> _Pieces:
        """Rules, topics and calendar (ConfigError if broken), one source stage per consumed
        partition and one owner per partials partition (made on demand); metrics told what
        to expect."""
        topics = load_topics(settings.topics)
        rules = load_rules(settings.rules, topics)
        codec = Codec(topics)
        dead: list[DeadLetter] = []
        pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), dead.append),
                          [r.metric for r in rules])
        calendar = load_calendar(settings.rules / "calendar.yaml")
        partitions = {name: spec.partitions for name, spec in topics.items()}
        sources = expected_sources(rules, partitions)
        idle_ms = int(settings.idle_after.total_seconds() * 1000)

        def new_owner(group: list[MetricRule], stats: EngineStats) -> Owner:
            return Owner(Engine(group, calendar, on_score=metrics.observe, stats=stats),
                         sources, idle_ms)  # scores and business gauges

        owners = Owners(rules, partitions[PARTIALS_TOPIC], new_owner)
        metrics.expect({r.metric: [s.topic for s in r.sources] for r in rules}, codec.event_topics)
        metrics.track_stats(lambda: [*pool.stats(), owners.stats])
        return cls(rules, topics, codec, pool, dead, owners, metrics)


def build_runtime(
    settings: WorkerSettings, clock: Clock | None = None, metrics: RuntimeMetrics | None = None,
    notifier: NotifierSettings | None = None,
) -> Runtime:
    """Loads rules and topics (ConfigError if broken) and declares the app's agents and tables;
    with `notifier`, also the Slack notifier (runtime/notifier.py) on the alerts topic."""
    clock = clock or SystemClock()
    p = _Pieces.load(settings, metrics or RuntimeMetrics())
    app = _app(settings, p.topics)
    rt = Runtime(app, settings, p.metrics, p.pool, p.owners, p.topics)
    topics = _declare_topics(app, settings, p)
    state = app.Table("owner-state", default=None, partitions=p.owners.partitions,
                      key_type=str, value_type=str)
    checkpoint = Checkpoint(p.owners, state,
                            lambda records: publish(topics.alerts, p.metrics, records),
                            SAVE_EVERY, partials_log(topics), flush=lambda: app.producer.flush())
    horizon_ms = p.pool.horizon_ms() + MAX_SKEW_MS  # what a resumed source re-reads (resume.py)
    sources = SourceAgent(p.pool, p.dead, topics, p.metrics, clock, horizon_ms)
    owners = OwnerAgent(checkpoint, p.metrics, clock)
    ticker = Ticker(app, topics, [group[0].metric for group in p.owners.groups.values()], clock)
    flush_s = settings.flush_interval.total_seconds()

    @app.agent(topics.events, name="sources")
    async def _sources(stream: Any) -> None:
        async for batch in stream.take_bulk(settings.batch_max, flush_s):
            await sources.on_batch(batch)

    @app.agent(topics.partials, name="owners")
    async def _owners(stream: Any) -> None:
        async for event in stream.noack().events():
            await owners.on_event(event)

    app.timer(TICK_S)(ticker.tick)
    app.on_partitions_revoked.connect(_on_revoked(rt, topics, checkpoint))
    if notifier is not None:
        handles = install_notifier(app, topics.alerts, _raw(app, settings, p, NOTIFIER_TICKS_TOPIC),
                                   _raw(app, settings, p, CONTROL_TOPIC), notifier)
        p.metrics.track_notifier(lambda: [handles.notifier.stats, handles.stats])
        p.metrics.track_control(lambda: [handles.control])  # feedback answers, refused records
    return rt


def _app(settings: WorkerSettings, topics: dict[str, TopicSpec]) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=broker_url(settings.bootstrap),
        broker_credentials=settings.security.faust_credentials(),  # TLS, SASL: kafka_security
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


def _raw(app: faust.App, settings: WorkerSettings, p: _Pieces, name: str) -> faust.TopicT:
    """Topic `name` with raw keys and values (we encode ourselves)."""
    return app.topic(settings.topic_prefix + name, key_serializer="raw", value_serializer="raw",
                     partitions=p.topics[name].partitions)


def _declare_topics(app: faust.App, settings: WorkerSettings, p: _Pieces) -> Topics:
    prefix = settings.topic_prefix
    logical = {prefix + name: name for name in p.codec.event_topics}
    return Topics(
        events=app.topic(*sorted(logical), schema=RawSchema()),
        partials=_raw(app, settings, p, PARTIALS_TOPIC),
        alerts=_raw(app, settings, p, ALERTS_TOPIC),
        dead_letters=_raw(app, settings, p, DEAD_LETTERS_TOPIC),
        logical=logical,
        bootstrap=settings.bootstrap.split(","),
        prefix=prefix,
    )


def _on_revoked(rt: Runtime, topics: Topics, checkpoint: Checkpoint) -> Any:
    """Revoked event partitions lose their sources (and their counters); revoked partials
    partitions their owners."""
    async def on_revoked(_app: Any, revoked: set[TP], **_: Any) -> None:
        gone = [(topics.logical[tp.topic], tp.partition) for tp in revoked
                if tp.topic in topics.logical]
        for stats in rt.pool.forget(gone):
            rt.metrics.retire(stats)
        if any(tp.topic == topics.partials.get_topic_name() for tp in revoked):
            checkpoint.revoke()

    return on_revoked


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
