"""Interventions and external factors that coincide with an alert.

Governance actions (rule launches, takedowns, ...) come from their topic and are kept for a
bounded time; a calendar lists campaigns and holidays. An action or entry *overlaps* an alert's
slice when no dimension they both name has different values (an empty scope is platform-wide).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_guard.config.calendar import Calendar
from stream_guard.types import RootCauseHint, iso_utc

__all__ = ["INTERVENTIONS_TOPIC", "Action", "InterventionLog", "calendar_hints", "overlaps"]

INTERVENTIONS_TOPIC = "governance_actions"
"""The topic of governance actions (rule launches, takedowns): the interventions hints name."""

_MAX_RETENTION_MS = 7 * 86400_000


def overlaps(scope: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """No shared dimension with different values.

    >>> overlaps({"category": "toys"}, {"category": "toys", "region": "EU"})
    True
    >>> overlaps({"category": "toys"}, {"category": "books"})
    False
    >>> overlaps({}, {"region": "EU"})
    True
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
        self, labels: Mapping[str, str], start_ms: int, end_ms: int, lookback_ms: int
    ) -> list[RootCauseHint]:
        """Actions overlapping `labels` that happened in ``[start - lookback, end]``; the most
        specific match first, then the most recent."""
        found = [
            a for a in self._actions
            if start_ms - lookback_ms <= a.ts_ms <= end_ms and overlaps(a.scope, labels)
        ]
        found.sort(key=lambda a: (-sum(k in labels for k in a.scope), -a.ts_ms))
        return [_action_hint(a, start_ms) for a in found]

    def __len__(self) -> int:
        return len(self._actions)


def _action_hint(a: Action, start_ms: int) -> RootCauseHint:
    scope = ", ".join(f"{k}={v}" for k, v in sorted(a.scope.items())) or "platform-wide"
    minutes = round((start_ms - a.ts_ms) / 60000)
    when = f"{minutes} min before the window" if minutes >= 0 else "during the window"
    return RootCauseHint("intervention", f"{a.kind} {a.action_id} ({scope}) {when}", {
        "action_id": a.action_id, "action_kind": a.kind, "scope": dict(a.scope),
        "at": iso_utc(a.ts_ms), "description": a.description,
    })


def calendar_hints(
    calendar: Calendar, labels: Mapping[str, str], start_ms: int, end_ms: int
) -> list[RootCauseHint]:
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    end = datetime.fromtimestamp(end_ms / 1000, UTC)
    return [
        RootCauseHint("external", f"calendar: {e.name} ({e.kind})",
                      {"name": e.name, "calendar_kind": e.kind, "scope": dict(e.scope)})
        for e in calendar.entries
        if e.overlaps(start, end) and overlaps(e.scope, labels)
    ]
