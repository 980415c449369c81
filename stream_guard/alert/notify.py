"""The Slack notification pipeline: route → dedup → retry → record, one alert update at a time.

Stages in Alertmanager's order, short-circuiting when nothing is left to do:

1. **route**: the route tree gives the destinations; routes that already hold a thread for the
   episode keep hearing about it (a paging channel learns of the resolution even if the severity
   dropped meanwhile);
2. **dedup**: `why_notify` compares the update with the notification log entry;
3. **retry**: each Slack call goes through `retry`, the only place that sleeps and backs off;
4. **record**: the log entry is written only after Slack accepted every call.

A permanent failure on one route is logged once, counted and skipped; other routes go on. "now"
is an argument: nothing here reads the clock. The notifier is synchronous (WebClient is): a Faust
agent runs it in a thread over a `WriteBehindStore` of its table and flushes on the loop:

    staged = WriteBehindStore(nflog_table)
    notifier = SlackNotifier(load_routes(path), SlackSink.from_settings(settings), staged)
    async for record in stream:                       # alerts topic, keyed by fingerprint
        update = AlertRecord.parse(record)            # InvalidEvent → dead letters
        await asyncio.to_thread(notifier.notify, update, clock.now_ms())
        staged.flush()                                # table writes on the event loop
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from stream_guard.alert.nflog import LogEntry, NotificationLog, NotifyState, Reason, why_notify
from stream_guard.alert.routing import AlertLabels, Route, RouteTree, group_key
from stream_guard.errors import PermanentSinkError, RetryableSinkError
from stream_guard.sinks.slack import Posted
from stream_guard.sinks.slack_blocks import Handling, SlackMessage, render_parent, render_reply
from stream_guard.types import AlertRecord

__all__ = [
    "Messenger",
    "Outcome",
    "RetryPolicy",
    "SlackNotifier",
    "labels_of",
    "retry",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


def labels_of(alert: AlertRecord) -> AlertLabels:
    """What the route tree matches on."""
    return AlertLabels(metric=alert.metric, severity=alert.severity, slice=alert.slice)


def _state(alert: AlertRecord) -> NotifyState:
    """What dedup compares; the slices are the firing ones (or the alert's own slice)."""
    return NotifyState(
        alert.episode_id, alert.status, alert.sequence, alert.severity, alert.firing_keys()
    )


class Messenger(Protocol):
    """What the pipeline needs from a sink (`SlackSink` provides it)."""

    def post(
        self,
        channel: str,
        message: SlackMessage,
        *,
        thread_ts: str | None = ...,
        broadcast: bool = ...,
    ) -> Posted: ...

    def update(self, channel: str, ts: str, message: SlackMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff for 5xx/timeouts; a 429's Retry-After is honoured as given."""

    max_attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 300.0  # a longer rate-limit wait gives up; the next update retries

    def delay(self, attempt: int, error: RetryableSinkError) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after_s else None
        return min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


def retry(send: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], None]) -> T:
    """Call `send` until it succeeds, a PermanentSinkError escapes, or the policy gives up."""
    attempt = 1
    while True:
        try:
            return send()
        except RetryableSinkError as err:
            wait = policy.delay(attempt, err)
            if wait is None:
                raise
            log.info("retrying in %.1fs after attempt %d: %s", wait, attempt, err)
            sleep(wait)
            attempt += 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened on one route: the reason, and whether Slack got it (error if not).

    `retryable` marks a failure that a later attempt can fix (Slack down, rate limited): the
    caller should hold the update and try again rather than move on and lose it.
    """

    route: str
    reason: Reason
    delivered: bool
    error: str | None = None
    retryable: bool = False


class SlackNotifier:
    """Routes, dedups, sends (with retries) and records alert updates; state lives in `store`."""

    def __init__(
        self,
        routes: RouteTree,
        sink: Messenger,
        store: MutableMapping[str, dict[str, Any]],
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        handling: Callable[[str, int], Handling | None] | None = None,
    ) -> None:
        self.routes = routes
        # Who acknowledged or snoozed an episode (episode id, now) -> shown on its parent.
        self.handling = handling or (lambda episode_id, now_ms: None)
        self.sink = sink
        self.log = NotificationLog(store)
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        # (event, route, detail): ("sent", r, reason), ("failed", r, "permanent"|"retryable"),
        # ("retried", r, ""); the observability bundle can export them as counters.
        self.stats: Counter[tuple[str, str, str]] = Counter()
        self._reported: set[str] = set()

    def notify(self, alert: AlertRecord, now_ms: int) -> list[Outcome]:
        """Deliver one alert update to every route it is due on."""
        labels = labels_of(alert)
        return [self._on_route(r, alert, labels, now_ms) for r in self._destinations(alert, labels)]

    def _destinations(self, alert: AlertRecord, labels: AlertLabels) -> list[Route]:
        entry: str | None = alert.route
        if entry not in self.routes:
            self._once(f"route:{entry}", f"unknown route {entry!r} in {alert.metric}; using root")
            entry = None
        wanted = {r.name for r in self.routes.match(labels, entry)}
        for route in self.routes.walk():
            if self.log.get(route.name, group_key(route, labels, alert.episode_id)):
                wanted.add(route.name)
        return [r for r in self.routes.walk() if r.name in wanted]

    def _on_route(
        self, route: Route, alert: AlertRecord, labels: AlertLabels, now_ms: int
    ) -> Outcome:
        key = group_key(route, labels, alert.episode_id)
        entry = self.log.get(route.name, key)
        interval_ms = int(route.repeat_interval.total_seconds() * 1000)
        reason = why_notify(entry, _state(alert), now_ms, interval_ms)
        if reason is Reason.NONE:
            self.stats["deduped", route.name, ""] += 1
            return Outcome(route.name, reason, delivered=False)
        try:
            new_entry = self._deliver(route, reason, alert, entry, now_ms)
        except PermanentSinkError as err:
            self.stats["failed", route.name, "permanent"] += 1
            self._once(f"{route.name}:{err}", f"route {route.name}: giving up: {err}")
            return Outcome(route.name, reason, delivered=False, error=str(err))
        except RetryableSinkError as err:
            self.stats["failed", route.name, "retryable"] += 1
            log.warning("route %s: retries exhausted: %s", route.name, err)
            return Outcome(route.name, reason, delivered=False, error=str(err), retryable=True)
        self.log.record(route.name, key, new_entry)
        self.stats["sent", route.name, reason.value] += 1
        log.info("notified %s on %s (%s)", alert.episode_id, route.name, reason.value)
        return Outcome(route.name, reason, delivered=True)

    def _deliver(
        self, route: Route, reason: Reason, alert: AlertRecord, entry: LogEntry | None, now_ms: int
    ) -> LogEntry:
        """The Slack calls of one notification; the idempotent update goes before the reply."""
        parent = render_parent(alert, now_ms, self.handling(alert.episode_id, now_ms))
        if entry is None:  # Reason.FIRST: a new thread
            posted = self._retry(route, lambda: self.sink.post(route.channel, parent))
            return LogEntry.sent(_state(alert), channel=posted.channel, ts=posted.ts, now_ms=now_ms)
        reply = render_reply(
            alert,
            reason.value,
            previous_severity=entry.severity,
            previous_slices=entry.slices,
            first_sent_ms=entry.first_sent_ms,
            now_ms=now_ms,
        )
        self._retry(route, lambda: self.sink.update(entry.channel, entry.ts, parent))
        broadcast = reason is Reason.REPEAT_DUE  # a reminder hidden in a thread reminds no one
        self._retry(
            route,
            lambda: self.sink.post(entry.channel, reply, thread_ts=entry.ts, broadcast=broadcast),
        )
        return entry.advanced(_state(alert), now_ms)

    def refresh(self, alert: AlertRecord, now_ms: int) -> list[Outcome]:
        """Re-render the parent of every thread of `alert`'s episode (after an ack or a snooze).

        `alert` is the update the parents show; nothing is posted in the threads and the log is
        not advanced: chat.update is idempotent, so a refresh can be repeated safely.
        """
        parent = render_parent(alert, now_ms, self.handling(alert.episode_id, now_ms))
        outcomes = []
        for name, entry in self.log.threads(alert.episode_id):
            route = self.routes.get(name) if name in self.routes else self.routes.root
            try:
                self._update(route, entry, parent)
            except PermanentSinkError as err:
                self._once(f"{name}:{err}", f"route {name}: giving up: {err}")
                outcomes.append(Outcome(name, Reason.NONE, delivered=False, error=str(err)))
                continue
            except RetryableSinkError as err:
                log.warning("route %s: refresh failed: %s", name, err)
                outcomes.append(
                    Outcome(name, Reason.NONE, delivered=False, error=str(err), retryable=True)
                )
                continue
            outcomes.append(Outcome(name, Reason.NONE, delivered=True))
        return outcomes

    def _update(self, route: Route, entry: LogEntry, parent: SlackMessage) -> None:
        self._retry(route, lambda: self.sink.update(entry.channel, entry.ts, parent))

    def _retry(self, route: Route, send: Callable[[], T]) -> T:
        def sleep(seconds: float) -> None:
            self.stats["retried", route.name, ""] += 1
            self._sleep(seconds)

        return retry(send, self.policy, sleep)

    def _once(self, key: str, message: str) -> None:
        """Log a persistent problem once per notifier, then only at debug level."""
        level = logging.DEBUG if key in self._reported else logging.ERROR
        self._reported.add(key)
        log.log(level, message)
