"""Alert episodes: one per incident of a metric, pending → firing → resolved, announced once.

Anomalous slices of one metric window are grouped (Alertmanager's ``group_by``, on the slice
lattice) instead of raising a storm of per-slice alerts; but two unrelated incidents on one
metric are two episodes. A metric keeps a set of open episodes, each rooted at its lead slice:

- an anomaly led by slice S joins the open episode whose slice is the most specific ancestor of
  S or S itself (category=home, region=EU joins category=home; everything joins the platform
  episode); failing that, one whose slice descends from S (the incident broadened); failing
  that, one whose slice shares orders with S (region=EU and category=home: a change in one
  moves the other, so marginal slices cannot tell two incidents apart);
- the platform slice never joins a slice episode: a platform-wide change is its own incident;
- an anomaly related to no open episode (category=electronics while category=home is open:
  no order is in both) is a new candidate with its own `for` count and opens its own episode:
  own fingerprint, sequence, severity, repeats and resolution.

`group_slices` applies the same relation to the anomalous slices of one window. Flap control,
per episode: it fires after `for` consecutive anomalous windows, resolves after `resolve_after`
windows in which nothing joined it, its family (its slice and the slices under it) cannot
re-open during `cooldown` windows. At most
`max_open` episodes and candidates are open per metric; anomalies beyond that are folded into
the platform episode and counted (`folded`). A transition is an `Update` with the *reason* to
emit a record, a `Transition` (new, escalated on a higher severity, slices changed when a new
lead slice feeds it, resolved); a new episode is announced exactly once. Reminders of a firing
episode are not the engine's: the notifier sends them by the route's `repeat_interval`.

>>> from stream_guard.config.rules import AlertPolicy
>>> t = EpisodeTracker("gmv", "gmv@1", AlertPolicy.model_validate({"for": 2, "resolve_after": 1}))
>>> t.observe(900_000, [("warning", 5.0, (), "down")])  # pending
[]
>>> [str(u.reason) for u in t.observe(1_800_000, [("warning", 5.0, (), "down")])]
['new']
>>> [str(u.reason) for u in t.observe(2_700_000, [])]
['resolved']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from stream_guard.config.rules import AlertPolicy
from stream_guard.types import (
    Direction,
    SliceKey,
    format_slice,
    is_ancestor,
    iso_utc,
    overlaps,
    severity_rank,
)

__all__ = ["MAX_OPEN", "Anomaly", "Episode", "EpisodeTracker", "Transition", "Update",
           "fingerprint", "group_slices", "related_anchor"]

MAX_OPEN = 8
"""Episodes (and candidates) open at once per metric before anomalies fold into the platform."""

Anomaly = tuple[str, float, SliceKey, Direction]
"""(severity, score, lead slice, direction) of a group of anomalous slices of one window."""


def fingerprint(metric: str, slice_: SliceKey, rule_id: str) -> str:
    """Stable id of (metric, slice, rule).

    >>> fingerprint("gmv", (), "gmv@1")
    'b337c59e075a50d3'
    """
    text = f"{metric}|{format_slice(slice_)}|{rule_id}".encode()
    return hashlib.sha256(text).hexdigest()[:16]


def related_anchor(
    key: SliceKey, anchors: Iterable[SliceKey], overlap: bool = True
) -> SliceKey | None:
    """The anchor (episode slice) `key` belongs to, or None: the most specific anchor that is
    `key` or an ancestor of it; else the first that descends from it; else (with `overlap`)
    the first that shares orders with it (category=home and region=EU: the one's change moves
    the other, so a change in both is one incident as far as the slices can tell). Never for
    the platform slice, which no slice episode absorbs. Slices that cannot share an order
    (category=home and category=electronics) are unrelated: two incidents.

    >>> home, pair = (("category", "home"),), (("category", "home"), ("region", "EU"))
    >>> electronics, eu = (("category", "electronics"),), (("region", "EU"),)
    >>> related_anchor(pair, [(), home]), related_anchor(home, [pair])
    ((('category', 'home'),), (('category', 'home'), ('region', 'EU')))
    >>> related_anchor(eu, [electronics, home]), related_anchor(eu, [home], overlap=False)
    ((('category', 'electronics'),), None)
    >>> related_anchor(electronics, [home]), related_anchor((), [home])
    (None, None)
    """
    pool = list(anchors)
    above = [a for a in pool if a == key or is_ancestor(a, key)]
    if above:
        return max(above, key=len)
    if not key:
        return None
    below = [a for a in pool if is_ancestor(key, a)]
    if below or not overlap:
        return below[0] if below else None
    return next((a for a in pool if overlaps(a, key)), None)


def group_slices(
    firing: Sequence[tuple[SliceKey, Direction]],
    leads: Sequence[tuple[SliceKey, Direction]],
    anchors: Sequence[SliceKey],
) -> dict[SliceKey, list[SliceKey]]:
    """The anomalous slices of one window (most explanatory first), by the anchor they belong to.

    `anchors` are the slices of open episodes, `leads` the slices the change is clearly
    concentrated in (most explanatory first). A lead related to no anchor becomes one: a new
    incident. Every other slice goes to its ancestor or descendant anchor; else to the anchor
    of the first lead moving its way that overlaps it (region=EU moves because
    category=electronics does); else to an anchor it overlaps; else to the window's one group
    of slices nothing explains, led by the first of them (the platform if it is there: a change
    no slice stands out in is platform-wide). The platform firing alone (no slice moves its
    way) joins the first open anchor: the echo of its incident in the total.

    >>> home, elec = (("category", "home"),), (("category", "electronics"),)
    >>> eu = (("region", "EU"),)
    >>> group_slices([((), "down"), (home, "down"), (elec, "down"), (eu, "down")],
    ...              [(elec, "down")], [home])
    {(('category', 'home'),): [(('category', 'home'),)], \
(('category', 'electronics'),): [(), (('category', 'electronics'),), (('region', 'EU'),)]}
    """
    owner: dict[SliceKey, SliceKey] = {}
    groups: dict[SliceKey, list[SliceKey]] = {a: [] for a in anchors}
    for key, _ in leads:
        found = related_anchor(key, groups)
        owner[key] = key if found is None else found
        groups.setdefault(owner[key], [])
    spare: SliceKey | None = None
    for key, direction in sorted(firing, key=lambda kd: bool(kd[0])):
        anchor = owner.get(key)
        if anchor is None:
            anchor = _explained_by(key, direction, groups, owner, leads, firing)
        if anchor is None:
            anchor = spare = key if spare is None else spare
        groups.setdefault(anchor, []).append(key)
    return {a: members for a, members in groups.items() if members}


def _explained_by(
    key: SliceKey,
    direction: Direction,
    groups: dict[SliceKey, list[SliceKey]],
    owner: dict[SliceKey, SliceKey],
    leads: Sequence[tuple[SliceKey, Direction]],
    firing: Sequence[tuple[SliceKey, Direction]],
) -> SliceKey | None:
    """The anchor a slice that is not a lead belongs to (see `group_slices`), if any."""
    found = related_anchor(key, groups, overlap=False)
    if found is None:
        found = next((owner[k] for k, d in leads if d == direction and overlaps(k, key)), None)
    if found is None:
        found = related_anchor(key, groups)
    if found is None and not key and not any(k and d == direction for k, d in firing):
        found = next(iter(groups), None)  # the platform alone: an open episode's echo
    return found


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


class Transition(StrEnum):
    """What changed in an episode: each is one alert record (its `reason`). There is no
    "repeat": reminding of a firing episode is the notifier's, per route (`repeat_interval`)."""

    NEW = "new"
    ESCALATED = "escalated"  # a higher severity
    SLICES_CHANGED = "slices_changed"  # a slice that had not led it before now leads it
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Update:
    """A record to emit: `episode` went through `reason`; `lead` is the lead of the anomaly that
    fed it in this window (None when it resolved)."""

    episode: Episode
    reason: Transition
    lead: SliceKey | None


def _strength(anomaly: Anomaly) -> tuple[int, float]:
    return severity_rank(anomaly[0]), anomaly[1]


class EpisodeTracker:
    """The lifecycle of one metric's episodes; plain data, picklable (kept in a table live)."""

    def __init__(
        self, metric: str, rule_id: str, policy: AlertPolicy, max_open: int = MAX_OPEN
    ) -> None:
        self.metric = metric
        self.rule_id = rule_id
        self.policy = policy
        self.max_open = max_open
        self.episodes: list[Episode] = []  # open (firing) ones, oldest first
        self.pending: dict[SliceKey, int] = {}  # candidate slice -> anomalous windows so far
        self.cooldowns: dict[SliceKey, int] = {}  # resolved slice -> windows before re-opening
        self.folded = 0  # anomalies folded into the platform episode by `max_open`

    def anchors(self) -> list[SliceKey]:
        """The slices of the open episodes and candidates."""
        return [ep.slice for ep in self.episodes] + list(self.pending)

    def observe(self, window_end_ms: int, anomalies: Sequence[Anomaly]) -> list[Update]:
        """Feeds one closed window's anomalies (none: a normal window); returns the records to
        emit, open episodes first."""
        routed = self._route(anomalies)
        updates = [u for ep in self.episodes
                   if (u := self._step(ep, window_end_ms, routed.pop(ep.slice, None)))]
        opened = [self._candidate(window_end_ms, key, a) for key, a in routed.items()]
        updates += [Update(ep, Transition.NEW, a[2])
                    for ep, a in zip(opened, routed.values(), strict=True) if ep is not None]
        self.pending = {k: n for k, n in self.pending.items() if k in routed}
        self.cooldowns = {k: n - 1 for k, n in self.cooldowns.items() if n > 1}
        for ep in self.episodes:
            if ep.resolved_ms is not None and self.policy.cooldown:
                self.cooldowns[ep.slice] = self.policy.cooldown
        self.episodes = [ep for ep in self.episodes if ep.resolved_ms is None]
        return updates

    def _route(self, anomalies: Sequence[Anomaly]) -> dict[SliceKey, Anomaly]:
        """Each anomaly by the slice of the episode or candidate it belongs to (the strongest
        when several belong to one)."""
        routed: dict[SliceKey, Anomaly] = {}
        for anomaly in anomalies:
            key = self._target(anomaly[2], routed)
            prior = routed.get(key)
            routed[key] = anomaly if prior is None else max(prior, anomaly, key=_strength)
        return routed

    def _target(self, lead: SliceKey, routed: dict[SliceKey, Anomaly]) -> SliceKey:
        anchors = self.anchors() + [k for k in routed if k not in self.pending]
        found = related_anchor(lead, anchors)
        if found is not None:
            return found
        if lead and len(set(anchors)) >= self.max_open:
            self.folded += 1
            return ()
        return lead

    def _step(self, ep: Episode, window_end_ms: int, anomaly: Anomaly | None) -> Update | None:
        if anomaly is None:
            reason = self._quiet(ep, window_end_ms)
            return None if reason is None else Update(ep, reason, None)
        reason = self._feed(ep, window_end_ms, anomaly)
        return None if reason is None else Update(ep, reason, anomaly[2])

    def _feed(self, ep: Episode, window_end_ms: int, anomaly: Anomaly) -> Transition | None:
        severity, score, lead, _ = anomaly
        ep.normal_streak = 0
        ep.peak_score = max(ep.peak_score, score)
        new_lead = lead not in ep.leads_seen
        ep.leads_seen.add(lead)
        if severity_rank(severity) > severity_rank(ep.severity):
            ep.severity = severity
            return self._bump(ep, window_end_ms, Transition.ESCALATED)
        if new_lead:
            return self._bump(ep, window_end_ms, Transition.SLICES_CHANGED)
        return None

    def _quiet(self, ep: Episode, window_end_ms: int) -> Transition | None:
        ep.normal_streak += 1
        if ep.normal_streak < self.policy.resolve_after:
            return None
        ep.resolved_ms = window_end_ms
        return self._bump(ep, window_end_ms, Transition.RESOLVED)

    def _cooling(self, key: SliceKey) -> bool:
        return any(c == key or is_ancestor(c, key) for c in self.cooldowns)

    def _candidate(self, window_end_ms: int, key: SliceKey, anomaly: Anomaly) -> Episode | None:
        """One more anomalous window for the candidate at `key`; its episode once it opens."""
        if self._cooling(key):
            return None
        count = self.pending.pop(key, 0) + 1
        if count < self.policy.for_windows:
            self.pending[key] = count
            return None
        severity, score, lead, direction = anomaly
        fp = fingerprint(self.metric, key, self.rule_id)
        stamp = iso_utc(window_end_ms).replace("-", "").replace(":", "")
        ep = Episode(
            self.metric, fp, f"{self.metric}-{stamp}-{fp[:8]}", key, direction,
            window_end_ms, severity, score, last_sent_ms=window_end_ms, leads_seen={lead},
        )
        self.episodes.append(ep)
        return ep

    @staticmethod
    def _bump(ep: Episode, window_end_ms: int, reason: Transition) -> Transition:
        ep.sequence += 1
        ep.last_sent_ms = window_end_ms
        return reason
