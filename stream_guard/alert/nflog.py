"""The notification log (Alertmanager's nflog): what was last sent, per (route, group key).

An entry remembers the last notified state of an episode on one route, and the Slack thread it
lives in (channel id and parent `ts`), so a restarted notifier continues the same thread. The log
sits on any `MutableMapping[str, dict]` (a dict in tests, a Faust table in the worker). Values are
plain JSON-able dicts and are always replaced, never mutated in place, because a Faust table
only writes its changelog on `__setitem__`.

`why_notify` is the pure decision for an update, given the entry; `reminder_due` the decision
for a reminder of a firing episode, given the time (Alertmanager's `repeat_interval`):

>>> state = NotifyState("ep-1", "firing", 0, "warning", frozenset({"region=EU"}))
>>> why_notify(None, state)
<Reason.FIRST: 'first'>
>>> entry = LogEntry.sent(state, channel="C1", ts="1.0", now_ms=0)
>>> why_notify(entry, state._replace(sequence=1))
<Reason.NONE: 'none'>
>>> why_notify(entry, state._replace(sequence=1, severity="critical"))
<Reason.ESCALATED: 'escalated'>
>>> reminder_due(entry, now_ms=3_599_999, repeat_interval_ms=3_600_000)
False
>>> reminder_due(entry, now_ms=3_600_000, repeat_interval_ms=3_600_000)
True
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any, NamedTuple

from stream_guard.types import severity_rank

__all__ = [
    "LogEntry",
    "NotificationLog",
    "NotifyState",
    "Reason",
    "WriteBehindStore",
    "reminder_due",
    "why_notify",
]

DEFAULT_RETENTION_MS = 5 * 24 * 3_600_000  # Alertmanager keeps its nflog for 120h


class Reason(StrEnum):
    """Why a notification is due; NONE means stay quiet."""

    FIRST = "first"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    REPEAT_DUE = "repeat_due"
    NONE = "none"


class NotifyState(NamedTuple):
    """The part of an alert update that dedup compares: status, sequence, severity, slices."""

    episode_id: str
    status: str
    sequence: int
    severity: str
    slices: frozenset[str]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """What was last sent for one group on one route, and where its thread lives."""

    episode_id: str
    status: str
    sequence: int
    severity: str
    slices: tuple[str, ...]
    channel: str
    ts: str
    first_sent_ms: int
    last_sent_ms: int

    @classmethod
    def sent(cls, state: NotifyState, *, channel: str, ts: str, now_ms: int) -> LogEntry:
        """The entry of a first notification (a new thread)."""
        return cls(
            episode_id=state.episode_id,
            status=state.status,
            sequence=state.sequence,
            severity=state.severity,
            slices=tuple(sorted(state.slices)),
            channel=channel,
            ts=ts,
            first_sent_ms=now_ms,
            last_sent_ms=now_ms,
        )

    def advanced(self, state: NotifyState, now_ms: int) -> LogEntry:
        """The entry after a later notification in the same thread; slices accumulate."""
        return replace(
            self,
            status=state.status,
            sequence=state.sequence,
            severity=max(self.severity, state.severity, key=severity_rank),
            slices=tuple(sorted(set(self.slices) | state.slices)),
            last_sent_ms=now_ms,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["slices"] = list(self.slices)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogEntry:
        return cls(**{**data, "slices": tuple(data["slices"])})


def why_notify(entry: LogEntry | None, state: NotifyState) -> Reason:
    """Decide whether (and why) the update `state` must be notified, given what was last sent.

    Updates at or below the last sent sequence are duplicates (replays, redeliveries): that makes
    sends idempotent per (episode, status, sequence). A resolved thread stays closed. An update
    with nothing new for the route (its slices were all announced there) is not sent: reminders
    are `reminder_due`'s.
    """
    if state.status not in ("firing", "resolved"):
        return Reason.NONE  # silenced, or a status this notifier does not know
    if entry is None or entry.episode_id != state.episode_id:
        return Reason.FIRST if state.status == "firing" else Reason.NONE
    if state.sequence <= entry.sequence or entry.status == "resolved":
        return Reason.NONE
    if state.status == "resolved":
        return Reason.RESOLVED
    if severity_rank(state.severity) > severity_rank(entry.severity):
        return Reason.ESCALATED
    if not state.slices <= set(entry.slices):
        return Reason.ESCALATED
    return Reason.NONE


def reminder_due(entry: LogEntry, now_ms: int, repeat_interval_ms: int) -> bool:
    """A firing thread not notified for `repeat_interval_ms` is reminded of (`REPEAT_DUE`)."""
    return entry.status == "firing" and now_ms - entry.last_sent_ms >= repeat_interval_ms


class NotificationLog:
    """The log over a store: keys are ``"<route>|<group key>"``, values `LogEntry.to_json()`."""

    def __init__(
        self,
        store: MutableMapping[str, dict[str, Any]],
        retention_ms: int = DEFAULT_RETENTION_MS,
    ) -> None:
        self._store = store
        self.retention_ms = retention_ms

    @staticmethod
    def key(route: str, group: str) -> str:
        return f"{route}|{group}"

    def get(self, route: str, group: str) -> LogEntry | None:
        data = self._store.get(self.key(route, group))
        return LogEntry.from_json(data) if data is not None else None

    def record(self, route: str, group: str, entry: LogEntry) -> None:
        """Write an entry; call only after Slack accepted the message."""
        self._store[self.key(route, group)] = entry.to_json()

    def threads(self, episode_id: str) -> list[tuple[str, LogEntry]]:
        """(route, entry) of every thread of an episode (group keys end with the episode id)."""
        suffix = f"|{episode_id}"
        return [(k.split("|", 1)[0], e) for k, e in self if k.endswith(suffix)]

    def __iter__(self) -> Iterator[tuple[str, LogEntry]]:
        for key, data in list(self._store.items()):
            yield key, LogEntry.from_json(data)

    def gc(self, now_ms: int) -> int:
        """Forget entries not notified for `retention_ms`; returns how many were dropped."""
        stale = [k for k, e in self if now_ms - e.last_sent_ms > self.retention_ms]
        for key in stale:
            del self._store[key]
        return len(stale)


class WriteBehindStore(MutableMapping[str, dict[str, Any]]):
    """Reads through to `backing`; writes wait until `flush()`.

    For a Faust table: the notifier runs in a worker thread (WebClient blocks), but a table must
    be written on the event loop, while the current event is known. Run `notify` in the thread
    on this store, then call `flush()` back on the loop. A deleted key is buffered as None.
    """

    def __init__(self, backing: MutableMapping[str, dict[str, Any]]) -> None:
        self._backing = backing
        self._pending: dict[str, dict[str, Any] | None] = {}

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._backing[key]

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        self._pending[key] = value

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError when absent, like a dict
        self._pending[key] = None

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys([*self._backing, *self._pending])
        return (k for k in keys if self._pending.get(k, True) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> int:
        """Apply the buffered writes to `backing`; returns how many there were."""
        pending, self._pending = self._pending, {}
        for key, value in pending.items():
            if value is None:
                self._backing.pop(key, None)
            else:
                self._backing[key] = value
        return len(pending)
