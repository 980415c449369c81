"""Alert episodes: one per metric problem, pending → firing → resolved, announced once.

Anomalous slices of one metric window are grouped into ONE episode of that metric
(Alertmanager's ``group_by: [metric]``) instead of a storm of per-slice alerts; the slices it
covers are listed, most explanatory first. Flap control: the episode fires after `for`
consecutive anomalous windows, resolves after `resolve_after` normal ones, cannot re-open during
`cooldown` windows, and repeats a firing notice every `repeat`. A transition returns the
*reason* to emit a record (new, escalated on a higher severity, repeat, resolved) or None; a new
episode is announced exactly once.

>>> from stream_guard.config.rules import AlertPolicy
>>> t = EpisodeTracker("gmv", "gmv@1", AlertPolicy.model_validate({"for": 2, "resolve_after": 1}))
>>> t.observe(900_000, anomaly=("warning", 5.0, (), "down"))  # pending
>>> t.observe(1_800_000, anomaly=("warning", 5.0, (), "down"))
'new'
>>> t.observe(2_700_000, anomaly=None)
'resolved'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from stream_guard.config.rules import AlertPolicy
from stream_guard.types import Direction, SliceKey, format_slice, iso_utc

__all__ = ["Anomaly", "Episode", "EpisodeTracker", "fingerprint"]

_RANK = {None: 0, "warning": 1, "critical": 2}

Anomaly = tuple[str, float, SliceKey, Direction]
"""(severity, score, lead slice, direction) of a metric window with anomalous slices."""


def fingerprint(metric: str, slice_: SliceKey, rule_id: str) -> str:
    """Stable id of (metric, slice, rule).

    >>> fingerprint("gmv", (), "gmv@1")
    'b337c59e075a50d3'
    """
    text = f"{metric}|{format_slice(slice_)}|{rule_id}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


@dataclass
class Episode:
    metric: str
    fingerprint: str
    episode_id: str
    slice: SliceKey
    direction: Direction
    started_ms: int
    severity: str
    peak_score: float
    sequence: int = 0
    last_sent_ms: int = 0
    normal_streak: int = 0
    leads_seen: set[SliceKey] = field(default_factory=set)
    resolved_ms: int | None = None


class EpisodeTracker:
    """The lifecycle of one metric's episodes; plain data, picklable (kept in a table live)."""

    def __init__(self, metric: str, rule_id: str, policy: AlertPolicy) -> None:
        self.metric = metric
        self.rule_id = rule_id
        self.policy = policy
        self.current: Episode | None = None
        self._pending = 0
        self._cooldown = 0

    def observe(self, window_end_ms: int, anomaly: Anomaly | None) -> str | None:
        """Feeds one closed window; returns why a record must be emitted, if it must."""
        if anomaly is None:
            return self._quiet(window_end_ms)
        ep = self.current
        if ep is None:
            return self._maybe_open(window_end_ms, anomaly)
        severity, score, lead, _ = anomaly
        ep.normal_streak = 0
        ep.peak_score = max(ep.peak_score, score)
        ep.leads_seen.add(lead)
        if _RANK[severity] > _RANK[ep.severity]:
            ep.severity = severity
            return self._bump(ep, window_end_ms, "escalated")
        if window_end_ms - ep.last_sent_ms >= self.policy.repeat.total_seconds() * 1000:
            return self._bump(ep, window_end_ms, "repeat")
        return None

    def _maybe_open(self, window_end_ms: int, anomaly: Anomaly) -> str | None:
        if self._cooldown > 0:
            self._cooldown -= 1
            return None
        self._pending += 1
        if self._pending < self.policy.for_windows:
            return None
        severity, score, lead, direction = anomaly
        fp = fingerprint(self.metric, lead, self.rule_id)
        stamp = iso_utc(window_end_ms).replace("-", "").replace(":", "")
        self.current = Episode(
            self.metric, fp, f"{self.metric}-{stamp}-{fp[:8]}", lead, direction,
            window_end_ms, severity, score, last_sent_ms=window_end_ms, leads_seen={lead},
        )
        self._pending = 0
        return "new"

    def _quiet(self, window_end_ms: int) -> str | None:
        self._pending = 0
        ep = self.current
        if ep is None:
            self._cooldown = max(0, self._cooldown - 1)
            return None
        ep.normal_streak += 1
        if ep.normal_streak < self.policy.resolve_after:
            return None
        ep.resolved_ms = window_end_ms
        self._cooldown = self.policy.cooldown
        return self._bump(ep, window_end_ms, "resolved")

    @staticmethod
    def _bump(ep: Episode, window_end_ms: int, reason: str) -> str:
        ep.sequence += 1
        ep.last_sent_ms = window_end_ms
        return reason

    def close_resolved(self) -> None:
        """Forgets the current episode once its resolution was emitted."""
        if self.current is not None and self.current.resolved_ms is not None:
            self.current = None
