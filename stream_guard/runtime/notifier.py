"""The Slack notifier as Faust wiring: `install_notifier(app, alerts, ticks, control, settings)`.

What it declares on `app`:

- the **notify agent** on the alerts topic (the outbox: detection only produces records, it never
  waits for Slack) and on the notifier's ticks topic, co-partitioned with it. Per record: the
  stages of alert/dispatch.py (inhibit → silence) then `Notifier.notify` (route → dedup → retry
  → record) in a thread, its table writes staged in a `WriteBehindStore` and flushed back on the
  loop. Per tick (a timer sends one to each ticks partition whose alerts partition this worker
  holds, every `remind_every_s`): the reminders due in that partition (`Notifier.remind`, the
  route's `repeat_interval`), so that their table writes, like every other, happen while the
  agent handles a message of the table's partition, as Faust requires. While Slack answers
  with retryable errors (down, rate limited, timing out) the agent holds the record and tries
  again with capped backoff (`settings.hold`), so nothing is lost and delivery resumes in
  order; permanent errors (invalid_auth, channel_not_found) are logged once and skipped, and do
  not hold other routes;
- four changelog-backed **tables**, co-partitioned with the alerts topic: ``<name>-nflog`` (the
  notification log: what was sent per (route, group key), with the thread's channel and ts, so a
  restarted worker continues the same thread instead of posting a second parent),
  ``<name>-threads`` (per episode with a thread, its latest update: what reminders and
  refreshes show), ``<name>-firing`` (the firing episodes, for inhibition) and
  ``<name>-comoving`` (alert/correlate.py: per episode, its span and slices, the other metrics'
  episodes it co-moves with and those its parents show);
- **co-moving metrics across owners**: every record, muted or not, goes through the
  `Correlator` before it is notified, so a first post names the episodes it co-moves with;
  the parents of episodes that gained a peer are then updated (one chat.update each, never a
  new message), and the tick retries any such update Slack failed. The links depend on the set
  of records, not on the order owners' records arrived in;
- a **control reader** on every worker: it reads the control topic (silences, acks) from the
  beginning into a `ControlView` before the agent handles its first record, then follows it.
  Acks and snoozes that arrive while running refresh the episode's parent messages;
- the **interactivity endpoint** (`settings.interactivity_path` on Faust's web server): Slack's
  signature checked (401 if bad, stale or replayed), then Acknowledge becomes an `Ack` and
  Snooze 1h a one-hour `Silence` of the episode's metric and slice, written to the control topic.

Silenced updates are not sent: a copy of the record with ``status: "silenced"`` and
``silenced_by: [silence ids]`` is written to the alerts topic (key = fingerprint), so the topic
stays the record of what happened; the notifier ignores those copies when it reads them back. A
resolution still reaches a thread that was already opened, so no thread is left firing forever.

Both topics carry UTF-8 JSON values and string keys; this module sends raw bytes, whatever
serializers the caller declared on the topics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TableT
from mode import Service, ServiceT

from stream_guard.alert.dispatch import Dispatcher
from stream_guard.alert.feedback import action_to_control, handling_of
from stream_guard.alert.inhibit import Inhibitor
from stream_guard.alert.nflog import WriteBehindStore
from stream_guard.alert.notify import Notifier, Outcome, RetryPolicy
from stream_guard.alert.routing import RouteTree
from stream_guard.alert.silences import Ack, ControlRecord, ControlView
from stream_guard.clock import Clock, SystemClock
from stream_guard.config.routes import load_routes
from stream_guard.errors import ConfigError, InvalidEvent
from stream_guard.ingest.kafka_batch import partition_for
from stream_guard.runtime.comoving import Correlators, parse_status
from stream_guard.runtime.cursor import Cursor, read_gap
from stream_guard.runtime.ends import new_reader
from stream_guard.runtime.resume import read_range
from stream_guard.sinks.interactivity import AlertAction, interactivity_handler
from stream_guard.sinks.slack import DEFAULT_TIMEOUT_S, SlackSettings, SlackSink
from stream_guard.sinks.slack_integration import SlackIntegration
from stream_guard.types import AlertRecord

__all__ = ["Intake", "NotifierHandles", "NotifierSettings", "install_notifier"]

log = logging.getLogger(__name__)

GC_EVERY_MS = 3_600_000
"""How often the notify agent forgets notification-log entries past their retention (the
Alertmanager default, 5 days: alert/nflog.py). It runs while handling a record or a tick, so
its table deletions are written like every other nflog write."""


@dataclass(frozen=True)
class NotifierSettings:
    """What the notifier needs; `from_env` reads Slack's settings from the environment."""

    slack: SlackSettings
    routes: RouteTree
    clock: Clock = field(default_factory=SystemClock)
    # In-thread retries ride out a blip; a longer outage is held by the agent (`hold`, whose
    # attempts are unbounded: the record waits until Slack takes it).
    policy: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=4.0)
    )
    hold: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(base_delay_s=1.0, max_delay_s=60.0)
    )
    remind_every_s: float = 30.0  # how often reminders are looked for (ticks)
    timeout_s: int = DEFAULT_TIMEOUT_S
    name: str = "notifier"  # prefix of the tables and the agent
    interactivity_path: str = "/slack/interactivity"

    @classmethod
    def from_env(
        cls, routes_path: Path | str, environ: Mapping[str, str] | None = None
    ) -> NotifierSettings:
        """SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET, STREAM_GUARD_SLACK_BASE_URL; routes from file."""
        return cls(slack=SlackSettings.from_env(environ), routes=load_routes(routes_path))


@dataclass
class NotifierHandles:
    """What `install_notifier` declared, for the worker (metrics) and for tests."""

    agent: Any
    nflog: TableT
    threads: TableT
    control: ControlView
    reader: ControlReader
    notifier: Notifier
    # (outcome, route, reason) like `notifier.stats`: invalid, silenced, inhibited, held (a
    # record waiting while Slack was unavailable for a route), forgotten (notification-log GC;
    # reason `comoving`: co-moving episodes past retention), linked (a parent updated to name
    # a co-moving episode found after it, per route)
    stats: Counter[tuple[str, str, str]]


def install_notifier(
    app: faust.App,
    alerts_topic: faust.TopicT,
    ticks_topic: faust.TopicT,
    control_topic: faust.TopicT,
    settings: NotifierSettings,
) -> NotifierHandles:
    """Declare the notify agent, its tables, its ticks, the control reader and the
    interactivity page."""
    partitions = alerts_topic.partitions or 1  # tables are co-partitioned with the alerts
    if (ticks_topic.partitions or 1) != partitions:
        raise ConfigError(f"topic {ticks_topic.get_topic_name()} must have as many partitions "
                          f"as {alerts_topic.get_topic_name()} ({partitions})")
    nflog, threads, firing, comoving = (
        app.Table(f"{settings.name}-{table}", partitions=partitions, key_type=str)
        for table in ("nflog", "threads", "firing", "comoving"))
    control = ControlView()
    staged = WriteBehindStore(nflog)
    correlators = Correlators(comoving, ticks_topic, partitions)
    integration = SlackIntegration(SlackSink.from_settings(settings.slack, settings.timeout_s),
                                   lambda episode, now_ms: handling_of(control, episode, now_ms),
                                   peers=correlators.peers)
    notifier = Notifier(settings.routes, integration, staged, policy=settings.policy)
    dispatcher = Dispatcher(Inhibitor(settings.routes.inhibit_rules, firing), control, threads)
    runner = _Runner(settings, notifier, staged, dispatcher, alerts_topic, correlators)
    reader = ControlReader(_bootstrap(app), control_topic.get_topic_name(), control, runner.refresh)
    app.service(cast(type[ServiceT], reader))  # an instance is fine: Faust starts it as is
    ticks_name = ticks_topic.get_topic_name()
    inbox = app.topic(alerts_topic.get_topic_name(), ticks_name, key_serializer="raw",
                      value_serializer="raw", partitions=partitions)
    intake = _intake(app, settings.name, runner, alerts_topic.get_topic_name(), partitions)

    @app.agent(inbox, name=f"{settings.name}-notify")
    async def notify(stream: Any) -> None:
        async for event in stream.events():
            await reader.ready.wait()  # silences first: never send what is silenced
            msg = event.message
            if msg.topic == ticks_name:
                await runner.on_ticks_topic(msg.partition, event.value)
            else:
                await intake.alert(msg.partition, msg.offset, event.value)

    @app.timer(settings.remind_every_s)
    async def tick() -> None:
        held = {tp.partition for tp in app.consumer.assignment()
                if tp.topic == alerts_topic.get_topic_name()}
        for partition in sorted(held):
            await ticks_topic.send(value=b"{}", partition=partition, value_serializer="raw")

    _add_interactivity_page(app, settings, control_topic)
    return NotifierHandles(notify, nflog, threads, control, reader, notifier, dispatcher.stats)


ReadAlerts = Callable[[int, int, int], Awaitable[list[bytes]]]
"""(partition, lo, hi) -> the alert records of offsets [lo, hi) still in the log."""


@dataclass
class Intake:
    """Alert records in offset order from the notifier's saved position, not from Faust's
    committed offset, which can be past records nobody handled (runtime/cursor.py): a gap is
    read back from the log and handled first; a redelivered record is skipped."""

    cursor: Cursor
    handle: Callable[[int, Any], Awaitable[None]]  # (partition, record); saved on return
    read: ReadAlerts
    topic: str

    async def alert(self, partition: int, offset: int, value: Any) -> None:
        missing = self.cursor.gap("alerts", partition, offset)
        if missing is None:
            return  # handled, and its notification-log entries saved, before
        for record in await read_gap(f"alerts/{partition}", missing,
                                     lambda lo, hi: self.read(partition, lo, hi)):
            await self.handle(partition, record)
        await self.handle(partition, value)
        self.cursor.took("alerts", partition, offset)
        self.cursor.save("alerts", partition, offset + 1)  # after the log entries (flushed)

    def on_revoked(self) -> Any:
        """For Faust's signal: revoked alerts partitions' positions are read again on return."""
        async def forget(_app: Any, revoked: set[TopicPartition], **_: Any) -> None:
            if any(tp.topic == self.topic for tp in revoked):
                self.cursor.forget()
        return forget


def _intake(app: faust.App, name: str, runner: _Runner, topic: str, partitions: int) -> Intake:
    """The notifier's intake of `topic`, its positions in a table co-partitioned with it."""
    positions = app.Table(f"{name}-positions", partitions=partitions, key_type=str,
                          value_type=str)
    intake = Intake(Cursor(positions), runner.handle, _alerts_log(_bootstrap(app), topic), topic)
    app.on_partitions_revoked.connect(intake.on_revoked())
    return intake


def _alerts_log(bootstrap: list[str], topic: str) -> ReadAlerts:
    async def read(partition: int, lo: int, hi: int) -> list[bytes]:
        return [r.value or b"" for r in await read_range(bootstrap, topic, partition, lo, hi)]
    return read


class _Runner:
    """The agent's body, per record and per tick; the lock keeps this worker's Slack calls in
    order."""

    def __init__(
        self,
        settings: NotifierSettings,
        notifier: Notifier,
        staged: WriteBehindStore,
        dispatcher: Dispatcher,
        alerts_topic: faust.TopicT,
        correlators: Correlators,
    ) -> None:
        self.settings, self.notifier, self.staged = settings, notifier, staged
        self.dispatcher, self.alerts_topic = dispatcher, alerts_topic
        self.correlators = correlators
        self.lock = asyncio.Lock()
        self.stats = dispatcher.stats
        self._gc_ms = 0  # last notification-log GC (sender clock)

    async def handle(self, partition: int, value: Any) -> None:
        try:
            record = _as_record(value)
            alert = AlertRecord.parse(record)
        except InvalidEvent as exc:
            self.stats["invalid", "", exc.reason] += 1
            log.warning("notifier: skipping an invalid alert record: %s", exc)
            return
        now_ms = self.settings.clock.now_ms()
        verdict = self.dispatcher.triage(alert, now_ms, has_thread=self._has_thread(alert))
        correlator = self.correlators.of(partition)
        correlator.observe(alert)  # before notifying: a first post names its peers
        await self.correlators.tell(partition, alert.episode_id,
                                    self.dispatcher.inhibitor.firing.get(alert.episode_id))
        if verdict.action == "silenced":
            await self._record_silenced(record, alert, list(verdict.by))
        elif verdict.action == "inhibited":
            log.info("inhibited %s #%d by %s", alert.episode_id, alert.sequence,
                     ", ".join(verdict.by))
        if verdict.action == "notify":
            outcomes = await self._deliver(alert, self.notifier.notify)
            if outcomes and all(o.delivered for o in outcomes):  # every parent re-rendered
                correlator.shown(alert.episode_id)
            self.dispatcher.remember(alert, record, has_thread=self._has_thread(alert))
        await self._show_peers(partition,
                               [alert.episode_id, *correlator.linked_to(alert.episode_id)])
        await self._gc(now_ms)

    async def on_ticks_topic(self, partition: int, value: Any) -> None:
        """A tick, or another partition's status of one of its episodes (runtime/comoving.py):
        its co-moving peers, and whether it fires, for inhibition."""
        try:
            status = parse_status(value)
            if status is None:
                await self.tick(partition)
                return
            peer = status.peer or {}
            linked = self.correlators.of(partition).learn(peer)
        except InvalidEvent as exc:
            self.stats["invalid", "", exc.reason] += 1
            log.warning("notifier: skipping an invalid co-moving status: %s", exc)
            return
        episode_id = peer["peer"]["episode_id"]  # learn read it
        self.dispatcher.inhibitor.told(f"{partition}|{episode_id}", episode_id, status.firing)
        await self._show_peers(partition, linked)

    async def _show_peers(
        self, partition: int, episode_ids: Iterable[str],
        owned: Callable[[AlertRecord], bool] | None = None,
    ) -> None:
        """Update the parents of those episodes (`owned` ones) that do not show all their
        co-moving peers yet: one chat.update each, no new message; recorded once Slack took it."""
        correlator = self.correlators.of(partition)
        for episode_id in correlator.stale(episode_ids):
            alert = self.dispatcher.latest(episode_id)
            if alert is None or not self._has_thread(alert) or (owned and not owned(alert)):
                continue  # no parent yet: the first one is posted with its peers
            async with self.lock:
                outcomes = await asyncio.to_thread(self.notifier.refresh, alert,
                                                   self.settings.clock.now_ms())
            if not any(o.retryable for o in outcomes):  # permanent failures are given up
                correlator.shown(episode_id)
            for outcome in outcomes:
                if outcome.delivered:
                    self.stats["linked", outcome.route, ""] += 1

    async def tick(self, partition: int) -> None:
        """The reminders due among the episodes of one alerts partition."""
        now_ms = self.settings.clock.now_ms()
        count = self.alerts_topic.partitions or 1

        def owned(alert: AlertRecord) -> bool:
            return partition_for(alert.fingerprint.encode(), count) == partition

        for alert in list(self.dispatcher.due(now_ms, owned, self.notifier.reminders_due(now_ms))):
            await self._deliver(alert, self.notifier.remind)
        # parents a failed chat.update left without a peer, statuses a crash left untold:
        # tried again on every tick
        await self._show_peers(partition, list(self.dispatcher.threads), owned)
        await self.correlators.tell_all(partition, self.dispatcher.inhibitor.firing)
        await self._gc(now_ms)

    def _has_thread(self, alert: AlertRecord) -> bool:
        return bool(self.notifier.log.threads(alert.episode_id))

    async def _gc(self, now_ms: int) -> None:
        if now_ms - self._gc_ms < GC_EVERY_MS:
            return
        self._gc_ms = now_ms
        async with self.lock:
            if dropped := self.notifier.log.gc(now_ms):
                self.staged.flush()
                self.stats["forgotten", "", ""] += dropped
                log.info("notification log: forgot %d entries past retention", dropped)
            self.dispatcher.forget(lambda episode_id: bool(self.notifier.log.threads(episode_id)))
            if forgotten := self.correlators.forget():
                self.stats["forgotten", "", "comoving"] += forgotten

    async def _record_silenced(
        self, record: dict[str, Any], alert: AlertRecord, silences: list[str]
    ) -> None:
        copy = {**record, "status": "silenced", "silenced_by": silences}
        await _send_json(self.alerts_topic, alert.fingerprint, copy)
        log.info("silenced %s #%d by %s", alert.episode_id, alert.sequence, silences)

    async def _deliver(
        self, alert: AlertRecord, send: Callable[[AlertRecord, int], list[Outcome]]
    ) -> list[Outcome]:
        """`send` (notify or remind); while any route failed with a retryable error, wait
        (`settings.hold`'s backoff) and send again. Routes that were delivered are in the log by
        then, so the next attempt only retries the rest."""
        attempt = 1
        while True:
            async with self.lock:
                outcomes = await asyncio.to_thread(send, alert, self.settings.clock.now_ms())
                self.staged.flush()  # table writes on the loop, inside the current event
            failed = [o.route for o in outcomes if o.retryable]
            if not failed:
                return outcomes
            for route in failed:
                self.stats["held", route, ""] += 1
            wait = self.settings.hold.backoff(attempt)
            log.warning("Slack unavailable for %s on %s; retrying in %.0fs",
                        alert.episode_id, ", ".join(failed), wait)
            await asyncio.sleep(wait)
            attempt += 1

    async def refresh(self, item: ControlRecord) -> None:
        """An ack, a snooze or feedback arrived: re-render the episode's parents, if this
        worker has them."""
        alert = self.dispatcher.latest(item.episode_id) if item.episode_id else None
        if alert is None:
            return
        async with self.lock:
            await asyncio.to_thread(self.notifier.refresh, alert, self.settings.clock.now_ms())


def _as_record(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes | str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("not_json", str(exc)) from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise InvalidEvent("invalid_alert_record", f"expected a JSON object, got {kind}")
    return value


async def _send_json(topic: faust.TopicT, key: str, value: Mapping[str, Any]) -> None:
    await topic.send(
        key=key.encode(), value=orjson.dumps(value), key_serializer="raw", value_serializer="raw"
    )


def _bootstrap(app: faust.App) -> list[str]:
    return [f"{url.host}:{url.port or 9092}" for url in app.conf.broker]


class ControlReader(Service):
    """Reads the whole control topic (no consumer group: every worker sees every record).

    `ready` is set once the records present at start are applied; records after that are live:
    acks and snoozes among them go to `on_live` (which refreshes the parent messages).
    """

    def __init__(
        self,
        bootstrap: list[str],
        topic: str,
        view: ControlView,
        on_live: Callable[[ControlRecord], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap, self.topic, self.view, self.on_live = bootstrap, topic, view, on_live
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._live_from: dict[TopicPartition, int] = {}

    async def on_start(self) -> None:
        consumer = new_reader(self.bootstrap)  # TLS and SASL: the environment's, as the app's
        await consumer.start()
        self._consumer = consumer
        partitions = await _partitions(consumer, self.topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._live_from = await consumer.end_offsets(partitions)

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @Service.task
    async def _read(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            batches = await self._consumer.getmany(timeout_ms=200)
            for tp, messages in batches.items():
                for message in messages:
                    await self._apply(message.value, live=message.offset >= self._live_from[tp])
            if not self.ready.is_set() and await self._caught_up():
                self.ready.set()

    async def _apply(self, value: bytes | None, live: bool) -> None:
        try:
            item = self.view.apply(orjson.loads(value or b"null"))
        except (InvalidEvent, orjson.JSONDecodeError) as exc:
            log.warning("control topic: skipping an invalid record: %s", exc)
            return
        if live and (isinstance(item, Ack) or item.episode_id):
            await self.on_live(item)

    async def _caught_up(self) -> bool:
        assert self._consumer is not None
        for tp, end in self._live_from.items():
            if await self._consumer.position(tp) < end:
                return False
        return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    await consumer.topics()  # fetches metadata
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise ConfigError(f"control topic {topic!r} does not exist (stream-guard topics create)")
    return [TopicPartition(topic, p) for p in sorted(found)]


def _add_interactivity_page(
    app: faust.App, settings: NotifierSettings, control_topic: faust.TopicT
) -> None:
    secret = settings.slack.signing_secret
    if secret is None:
        log.warning("SLACK_SIGNING_SECRET is not set: the Slack buttons will not work")
        return

    async def on_action(action: AlertAction) -> None:
        item = action_to_control(action)
        if item is None:
            log.warning("interactivity: %s without metric on %s", action.action, action.episode_id)
            return
        await _send_json(control_topic, item.id, item.to_record())

    handler = interactivity_handler(secret, settings.clock, on_action)

    @app.page(settings.interactivity_path, name=f"{settings.name}-interactivity")
    class Interactivity(faust.web.View):
        async def post(self, request: web.Request) -> web.StreamResponse:
            return await handler(request)
