"""Interventions and external factors that coincide with an alert.

Governance actions (rule launches, takedowns, ...) come from their topic and are kept for a
bounded time; a calendar lists campaigns and holidays. An action or entry is attached to an
alert only when its scope *covers* the localised cause: the scope is the cause's slice or an
ancestor of it, i.e. every dimension the scope names is in the cause's slice with the same
value (an empty scope is platform-wide and covers everything). A scope naming a dimension the
cause does not have does not cover it: a category=toys rule launch says nothing about a
region=APAC onboarding alert, a "Toys sale" nothing about a card-payment outage.

Each hint's summary says how long before the window the action happened (or the entry
started) and, when the caller can measure it (`ScopeShare`, e.g. `slices.scope_share`), how
much of the change lies inside the scope. (Only in the summary: the typed hints of the alert
record, types.py, carry no field for them yet.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_guard.config.calendar import Calendar
from stream_guard.types import RootCauseHint, iso_utc

__all__ = [
    "INTERVENTIONS_TOPIC",
    "Action",
    "InterventionLog",
    "ScopeShare",
    "calendar_hints",
    "covers",
    "overlaps",
]

INTERVENTIONS_TOPIC = "governance_actions"
"""The topic of governance actions (rule launches, takedowns): the interventions hints name."""

ScopeShare = Callable[[Mapping[str, str]], "float | None"]
"""The share of the change (0..1) inside a scope, None when it cannot be measured."""

_MAX_RETENTION_MS = 7 * 86400_000


def covers(scope: Mapping[str, str], cause: Mapping[str, str]) -> bool:
    """The scope is the cause's slice or an ancestor: every scoped dimension is in the cause,
    with the same value.

    >>> covers({"category": "toys"}, {"category": "toys", "region": "EU"})
    True
    >>> covers({"category": "toys"}, {"category": "books"})
    False
    >>> covers({"category": "toys"}, {"region": "APAC"})
    False
    >>> covers({}, {"region": "EU"})
    True
    """
    return all(k in cause and cause[k] == v for k, v in scope.items())


def overlaps(scope: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """No shared dimension with different values: whether two slices can share events (what
    co-moving metrics ask, alert/correlate.py); too loose for blaming a cause, see `covers`.

    >>> overlaps({"category": "toys"}, {"region": "APAC"})
    True
    >>> overlaps({"category": "toys"}, {"category": "books"})
    False
    """
    return all(labels.get(k, v) == v for k, v in scope.items())


@dataclass(frozen=True, slots=True)
class Action:
    ts_ms: int
    action_id: str
    kind: str
    scope: Mapping[str, str]
    description: str


class InterventionLog:
    """Recent governance actions, oldest first."""

    def __init__(self) -> None:
        self._actions: deque[Action] = deque()
        self._ids: set[str] = set()

    def add(self, ts_ms: int, fields: Mapping[str, Any]) -> None:
        """Adds an action once: a second record with the same action_id is ignored (a live
        owner hears every action once per metric, and again after a restart)."""
        action_id = str(fields["action_id"])
        if action_id in self._ids:
            return
        self._ids.add(action_id)
        self._actions.append(Action(
            ts_ms, action_id, str(fields["kind"]),
            {str(k): str(v) for k, v in fields.get("scope", {}).items()},
            str(fields.get("description", "")),
        ))
        while self._actions and self._actions[0].ts_ms < ts_ms - _MAX_RETENTION_MS:
            self._ids.discard(self._actions.popleft().action_id)

    def hints(
        self, labels: Mapping[str, str], start_ms: int, end_ms: int, lookback_ms: int,
        share: ScopeShare | None = None,
    ) -> list[RootCauseHint]:
        """Actions whose scope covers `labels` (the localised cause) that happened in
        ``[start - lookback, end]``; the most specific scope first, then the most recent."""
        found = [
            a for a in self._actions
            if start_ms - lookback_ms <= a.ts_ms <= end_ms and covers(a.scope, labels)
        ]
        found.sort(key=lambda a: (-len(a.scope), -a.ts_ms))
        return [_action_hint(a, start_ms, share) for a in found]

    def __len__(self) -> int:
        return len(self._actions)


def _scope_text(scope: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(scope.items())) or "platform-wide"


def _when(minutes: int) -> str:
    return f"{minutes} min before the window" if minutes >= 0 else "during the window"


def _measured(scope: Mapping[str, str], share: ScopeShare | None) -> str:
    """The summary's tail: the share of the change inside `scope`, when measured."""
    value = None if share is None else share(scope)
    return "" if value is None else f"; {value:.0%} of the change is inside its scope"


def _action_hint(a: Action, start_ms: int, share: ScopeShare | None) -> RootCauseHint:
    minutes = round((start_ms - a.ts_ms) / 60000)
    tail = _measured(a.scope, share)
    return RootCauseHint(
        "intervention", f"{a.kind} {a.action_id} ({_scope_text(a.scope)}) {_when(minutes)}{tail}",
        {"action_id": a.action_id, "action_kind": a.kind, "scope": dict(a.scope),
         "at": iso_utc(a.ts_ms), "description": a.description},
    )


def calendar_hints(
    calendar: Calendar, labels: Mapping[str, str], start_ms: int, end_ms: int,
    share: ScopeShare | None = None,
) -> list[RootCauseHint]:
    """Entries overlapping the window whose scope covers `labels` (the localised cause)."""
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    hints = []
    for e in calendar.entries:
        if not (e.overlaps(start, end) and covers(e.scope, labels)):
            continue
        minutes = round((start - e.start).total_seconds() / 60)
        since = f"started {_when(minutes)}" if minutes >= 0 else "starts during the window"
        hints.append(RootCauseHint(
            "external",
            f"calendar: {e.name} ({e.kind}, {_scope_text(e.scope)}), {since}"
            f"{_measured(e.scope, share)}",
            {"name": e.name, "calendar_kind": e.kind, "scope": dict(e.scope)},
        ))
    return hints
