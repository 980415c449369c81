"""The Slack notifier as Faust wiring: one call, `install_notifier(app, alerts, control, settings)`.

What it declares on `app`:

- the **notify agent** on the alerts topic (the outbox: detection only produces records, it never
  waits for Slack). Per record: parse → silence → `SlackNotifier.notify` (route → dedup → retry →
  record) in a thread, its table writes staged in a `WriteBehindStore` and flushed back on the
  loop. While Slack answers with retryable errors (down, rate limited, timing out) the agent
  holds the record and tries again with capped backoff, so nothing is lost and delivery resumes
  in order; permanent errors (invalid_auth, channel_not_found) are logged once and skipped, and
  do not hold other routes;
- two changelog-backed **tables**, co-partitioned with the alerts topic: ``<name>-nflog`` (the
  notification log: what was sent per (route, group key), with the thread's channel and ts, so a
  restarted worker continues the same thread instead of posting a second parent) and
  ``<name>-threads`` (per episode, the alert its parent messages show, so an ack or a snooze can
  re-render them);
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TableT
from mode import Service, ServiceT

from stream_guard.alert.inhibit import Inhibitor
from stream_guard.alert.nflog import WriteBehindStore
from stream_guard.alert.notify import Outcome, RetryPolicy, SlackNotifier, labels_of
from stream_guard.alert.routing import RouteTree
from stream_guard.alert.silences import Ack, ControlView, Silence
from stream_guard.clock import Clock, SystemClock
from stream_guard.config.routes import load_routes
from stream_guard.errors import ConfigError, InvalidEvent
from stream_guard.sinks.interactivity import AlertAction, interactivity_handler
from stream_guard.sinks.slack import DEFAULT_TIMEOUT_S, SlackSettings, SlackSink
from stream_guard.sinks.slack_blocks import Handling
from stream_guard.types import AlertRecord

__all__ = ["NotifierHandles", "NotifierSettings", "install_notifier"]

log = logging.getLogger(__name__)

SNOOZE = timedelta(hours=1)
GC_EVERY_MS = 3_600_000
"""How often the notify agent forgets notification-log entries past their retention (the
Alertmanager default, 5 days: alert/nflog.py). It runs while handling a record, so its table
deletions are written like every other nflog write."""


@dataclass(frozen=True)
class NotifierSettings:
    """What the notifier needs; `from_env` reads Slack's settings from the environment."""

    slack: SlackSettings
    routes: RouteTree
    clock: Clock = field(default_factory=SystemClock)
    # In-thread retries ride out a blip; a longer outage is held by the agent (hold_*).
    policy: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=4.0)
    )
    hold_min_s: float = 1.0
    hold_max_s: float = 60.0
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
    notifier: SlackNotifier
    # (outcome, route, reason) like `notifier.stats`: invalid, silenced, inhibited, held (a
    # record waiting while Slack was unavailable for a route), forgotten (notification-log GC)
    stats: Counter[tuple[str, str, str]]


def install_notifier(
    app: faust.App,
    alerts_topic: faust.TopicT,
    control_topic: faust.TopicT,
    settings: NotifierSettings,
) -> NotifierHandles:
    """Declare the notify agent, its tables, the control reader and the interactivity page."""
    partitions = alerts_topic.partitions or 1  # tables are co-partitioned with the alerts
    nflog = app.Table(f"{settings.name}-nflog", partitions=partitions, key_type=str)
    threads = app.Table(f"{settings.name}-threads", partitions=partitions, key_type=str)
    firing = app.Table(f"{settings.name}-firing", partitions=partitions, key_type=str)
    control = ControlView()
    staged = WriteBehindStore(nflog)
    notifier = SlackNotifier(
        settings.routes,
        SlackSink.from_settings(settings.slack, settings.timeout_s),
        staged,
        policy=settings.policy,
        handling=lambda episode, now_ms: handling_of(control, episode, now_ms),
    )
    runner = _Runner(settings, notifier, staged, threads, control, alerts_topic)
    runner.inhibitor = Inhibitor(settings.routes.inhibit_rules, firing)
    reader = ControlReader(_bootstrap(app), control_topic.get_topic_name(), control, runner.refresh)
    app.service(cast(type[ServiceT], reader))  # an instance is fine: Faust starts it as is

    @app.agent(alerts_topic, name=f"{settings.name}-notify")
    async def notify(stream: Any) -> None:
        async for value in stream:
            await reader.ready.wait()  # silences first: never send what is silenced
            await runner.handle(value)

    _add_interactivity_page(app, settings, control_topic)
    return NotifierHandles(notify, nflog, threads, control, reader, notifier, runner.stats)


def handling_of(control: ControlView, episode_id: str, now_ms: int) -> Handling | None:
    """What the parent shows about who took the episode: its ack and its active snooze."""
    ack, snooze = control.acks.get(episode_id), control.snooze_of(episode_id, now_ms)
    if ack is None and snooze is None:
        return None
    return Handling(
        acked_by=ack.user_id if ack else None,
        acked_at_ms=ack.at_ms if ack else None,
        snoozed_by=snooze.author if snooze else None,
        snoozed_until_ms=snooze.ends_ms if snooze else None,
    )


class _Runner:
    """The agent's body, per record; the lock keeps Slack calls of this worker in order."""

    def __init__(
        self,
        settings: NotifierSettings,
        notifier: SlackNotifier,
        staged: WriteBehindStore,
        threads: TableT,
        control: ControlView,
        alerts_topic: faust.TopicT,
    ) -> None:
        self.settings, self.notifier, self.staged = settings, notifier, staged
        self.threads, self.control, self.alerts_topic = threads, control, alerts_topic
        self.lock = asyncio.Lock()
        self.stats: Counter[tuple[str, str, str]] = Counter()  # like SlackNotifier.stats
        self.inhibitor = Inhibitor(settings.routes.inhibit_rules, {})  # a table, once installed
        self._gc_ms = 0  # last notification-log GC (sender clock)

    async def handle(self, value: Any) -> None:
        try:
            record = _as_record(value)
            alert = AlertRecord.parse(record)
        except InvalidEvent as exc:
            self.stats["invalid", "", exc.reason] += 1
            log.warning("notifier: skipping an invalid alert record: %s", exc)
            return
        if alert.status == "silenced":
            return  # our own record of a silenced update
        if self._inhibited(alert):
            return
        now_ms = self.settings.clock.now_ms()
        if silences := self._silencing(alert, now_ms):
            await self._record_silenced(record, alert, silences)
            return
        await self._deliver(alert)
        await self._gc(now_ms)
        if self.notifier.log.threads(alert.episode_id):
            if alert.status == "resolved":
                self.threads.pop(alert.episode_id, None)
            else:
                self.threads[alert.episode_id] = record

    async def _gc(self, now_ms: int) -> None:
        if now_ms - self._gc_ms < GC_EVERY_MS:
            return
        self._gc_ms = now_ms
        async with self.lock:
            if dropped := self.notifier.log.gc(now_ms):
                self.staged.flush()
                self.stats["forgotten", "", ""] += dropped
                log.info("notification log: forgot %d entries past retention", dropped)

    def _inhibited(self, alert: AlertRecord) -> bool:
        """Inhibition (alert/inhibit.py): the update is muted while another alert fires."""
        labels = labels_of(alert)
        self.inhibitor.observe(alert.episode_id, labels, firing=alert.status == "firing")
        sources = self.inhibitor.inhibiting(alert.episode_id, labels)
        if not sources or self._closes_thread(alert):
            return False
        self.stats["inhibited", "", ""] += 1
        log.info("inhibited %s #%d by %s", alert.episode_id, alert.sequence, ", ".join(sources))
        return True

    def _silencing(self, alert: AlertRecord, now_ms: int) -> list[Silence]:
        silences = self.control.silencing(alert.metric, alert.slice, now_ms)
        return [] if self._closes_thread(alert) else silences

    def _closes_thread(self, alert: AlertRecord) -> bool:
        """A resolution of an episode that has a thread goes out whatever mutes it: no thread
        stays firing forever."""
        return alert.status == "resolved" and bool(self.notifier.log.threads(alert.episode_id))

    async def _record_silenced(
        self, record: dict[str, Any], alert: AlertRecord, silences: list[Silence]
    ) -> None:
        self.stats["silenced", "", ""] += 1
        copy = {**record, "status": "silenced", "silenced_by": [s.id for s in silences]}
        await _send_json(self.alerts_topic, alert.fingerprint, copy)
        log.info("silenced %s #%d by %s", alert.episode_id, alert.sequence, copy["silenced_by"])

    async def _deliver(self, alert: AlertRecord) -> list[Outcome]:
        """Notify; while any route failed with a retryable error, wait and notify again.

        Routes that were delivered are in the log by then, so a repeat only retries the rest.
        """
        hold = self.settings.hold_min_s
        while True:
            async with self.lock:
                now_ms = self.settings.clock.now_ms()
                outcomes = await asyncio.to_thread(self.notifier.notify, alert, now_ms)
                self.staged.flush()  # table writes on the loop, inside the current event
            failed = [o.route for o in outcomes if o.retryable]
            if not failed:
                return outcomes
            for route in failed:
                self.stats["held", route, ""] += 1
            log.warning("Slack unavailable for %s on %s; retrying in %.0fs",
                        alert.episode_id, ", ".join(failed), hold)
            await asyncio.sleep(hold)
            hold = min(hold * 2, self.settings.hold_max_s)

    async def refresh(self, item: Silence | Ack) -> None:
        """An ack or a snooze arrived: re-render the episode's parents, if this worker has them."""
        record = self.threads.get(item.episode_id) if item.episode_id else None
        if record is None:
            return
        alert = AlertRecord.parse(record)
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
        on_live: Callable[[Silence | Ack], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bootstrap, self.topic, self.view, self.on_live = bootstrap, topic, view, on_live
        self.ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._live_from: dict[TopicPartition, int] = {}

    async def on_start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
        )
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


def action_to_control(action: AlertAction) -> Silence | Ack | None:
    """Acknowledge → an Ack; Snooze 1h → a one-hour silence of the episode's metric and slice."""
    if action.action == "acknowledge":
        return Ack(
            episode_id=action.episode_id,
            user_id=action.user_id,
            user_name=action.user_name,
            at_ms=action.at_ms,
        )
    if action.metric is None:
        return None
    return Silence.create(
        action.metric,
        action.slice,
        action.at_ms,
        action.at_ms + int(SNOOZE.total_seconds() * 1000),
        reason="Snooze 1h from Slack",
        author=action.user_id,
        episode_id=action.episode_id,
    )
