"""The notification pipeline: route → dedup → retry → record, one alert update at a time.

Stages in Alertmanager's order, short-circuiting when nothing is left to do (inhibition and
silences come before, in alert/dispatch.py):

1. **route**: the route tree gives the destinations; routes that already hold a thread for the
   episode keep hearing about it (a paging channel learns of the resolution even if the severity
   dropped meanwhile);
2. **dedup**: `why_notify` compares the update with the notification log entry; a firing thread
   not notified for its route's `repeat_interval` gets a reminder (`remind`, `reminder_due`):
   reminders are the notifier's, the engine only emits transitions;
3. **retry**: each call to the integration goes through `retry`, the only place that sleeps and
   backs off;
4. **record**: the log entry is written only after the integration accepted every call.

The receiver is an `Integration` (sinks/slack_integration.py is Slack's: a thread per episode);
nothing here imports a sink. A permanent failure on one route is logged once, counted and
skipped; other routes go on. "now" is an argument: nothing here reads the clock. The notifier is
synchronous (slack-sdk's WebClient is): a Faust agent runs it in a thread over a
`WriteBehindStore` of its table and flushes on the loop (runtime/notifier.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from stream_guard.alert.nflog import (
    LogEntry,
    NotificationLog,
    NotifyState,
    Reason,
    reminder_due,
    why_notify,
)
from stream_guard.alert.routing import AlertLabels, Route, RouteTree, group_key
from stream_guard.errors import PermanentSinkError, RetryableSinkError
from stream_guard.types import AlertRecord

__all__ = [
    "Integration",
    "Notifier",
    "Outcome",
    "RetryPolicy",
    "Thread",
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


@dataclass(frozen=True, slots=True)
class Thread:
    """Where an integration put an episode's first notification (Slack: channel id, parent ts)."""

    channel: str
    ts: str


class Integration(Protocol):
    """A receiver of notifications, one thread per episode and route. Each call is one attempt:
    it raises RetryableSinkError (try again later) or PermanentSinkError (give up)."""

    def open(self, channel: str, alert: AlertRecord, now_ms: int) -> Thread:
        """The first notification of an episode on a route: a new thread."""
        ...

    def show(self, entry: LogEntry, alert: AlertRecord, now_ms: int) -> None:
        """Make the thread's head show `alert` (idempotent: safe to repeat)."""
        ...

    def follow(self, entry: LogEntry, alert: AlertRecord, reason: Reason, now_ms: int) -> None:
        """A later notification in the thread; `entry` is what was sent before."""
        ...


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
        return self.backoff(attempt)

    def backoff(self, attempt: int) -> float:
        """The capped exponential wait after failed attempt `attempt` (1, 2, 4 … max)."""
        return min(self.max_delay_s, self.base_delay_s * 2 ** min(attempt - 1, 62))


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


class Notifier:
    """Routes, dedups, sends (with retries) and records alert updates and reminders; state lives
    in `store` (the notification log)."""

    def __init__(
        self,
        routes: RouteTree,
        integration: Integration,
        store: MutableMapping[str, dict[str, Any]],
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.routes = routes
        self.integration = integration
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

    def remind(self, alert: AlertRecord, now_ms: int) -> list[Outcome]:
        """Remind of a firing episode on every route whose thread of it has not been notified
        for the route's `repeat_interval`; `alert` is the episode's latest update."""
        return [self._send(route, Reason.REPEAT_DUE, alert, entry, now_ms)
                for route, entry in self._threads(alert.episode_id)
                if reminder_due(entry, now_ms, _ms(route.repeat_interval.total_seconds()))]

    def reminders_due(self, now_ms: int) -> set[str]:
        """The episodes for which `remind` would send something now (one pass over the log)."""
        due = set()
        for key, entry in self.log:
            route = self._route(key.split("|", 1)[0])
            if reminder_due(entry, now_ms, _ms(route.repeat_interval.total_seconds())):
                due.add(entry.episode_id)
        return due

    def refresh(self, alert: AlertRecord, now_ms: int) -> list[Outcome]:
        """Make the head of every thread of `alert`'s episode show it again (after an ack or a
        snooze); nothing is posted in the threads and the log is not advanced."""
        outcomes = []
        for route, entry in self._threads(alert.episode_id):
            try:
                self._show(route, entry, alert, now_ms)
            except PermanentSinkError as err:
                self._once(f"{route.name}:{err}", f"route {route.name}: giving up: {err}")
                outcomes.append(Outcome(route.name, Reason.NONE, delivered=False, error=str(err)))
                continue
            except RetryableSinkError as err:
                log.warning("route %s: refresh failed: %s", route.name, err)
                outcomes.append(Outcome(route.name, Reason.NONE, delivered=False, error=str(err),
                                        retryable=True))
                continue
            outcomes.append(Outcome(route.name, Reason.NONE, delivered=True))
        return outcomes

    def _show(self, route: Route, entry: LogEntry, alert: AlertRecord, now_ms: int) -> None:
        self._retry(route, lambda: self.integration.show(entry, alert, now_ms))

    def _threads(self, episode_id: str) -> list[tuple[Route, LogEntry]]:
        return [(self._route(name), entry) for name, entry in self.log.threads(episode_id)]

    def _route(self, name: str) -> Route:
        """A route of the log by name; the root for one the routes file no longer has."""
        return self.routes.get(name) if name in self.routes else self.routes.root

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
        entry = self.log.get(route.name, group_key(route, labels, alert.episode_id))
        reason = why_notify(entry, _state(alert))
        if reason is Reason.NONE:
            self.stats["deduped", route.name, ""] += 1
            return Outcome(route.name, reason, delivered=False)
        return self._send(route, reason, alert, entry, now_ms)

    def _send(
        self, route: Route, reason: Reason, alert: AlertRecord, entry: LogEntry | None,
        now_ms: int,
    ) -> Outcome:
        """One notification on one route, recorded once the integration accepted it."""
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
        key = group_key(route, labels_of(alert), alert.episode_id)
        self.log.record(route.name, key, new_entry)
        self.stats["sent", route.name, reason.value] += 1
        log.info("notified %s on %s (%s)", alert.episode_id, route.name, reason.value)
        return Outcome(route.name, reason, delivered=True)

    def _deliver(
        self, route: Route, reason: Reason, alert: AlertRecord, entry: LogEntry | None, now_ms: int
    ) -> LogEntry:
        """The calls of one notification; the idempotent `show` goes before the follow-up."""
        if entry is None:  # Reason.FIRST: a new thread
            thread = self._retry(route, lambda: self.integration.open(route.channel, alert, now_ms))
            return LogEntry.sent(_state(alert), channel=thread.channel, ts=thread.ts,
                                 now_ms=now_ms)
        self._show(route, entry, alert, now_ms)
        self._retry(route, lambda: self.integration.follow(entry, alert, reason, now_ms))
        return entry.advanced(_state(alert), now_ms)

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


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
