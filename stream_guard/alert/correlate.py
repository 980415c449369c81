"""Co-moving metrics, decided where every owner's alerts meet: the notifier.

An owner sees only the metrics of its partials partition, so it cannot tell that another
owner's metric moved at the same time; the notifier reads every alert record (as Alertmanager's
grouping sees every alert). `Correlator` keeps, per episode, what the records said so far --
its metric, direction and slice, when it started, the last window it fired in, the slices that
fired -- and links two episodes of *different metrics* whose event-time spans overlap (from
the start of the first window it fired in to the end of the last: ``started_at`` is the end of
the first, when the engine opened it) in overlapping slices: the slices that fired (the
episode's own when a record names none; `explain.context.overlaps`: no shared dimension with
different values, so the platform overlaps every slice).

**Order does not matter.** An episode's span and slices only grow as its records arrive, and
overlap only becomes true as they grow, so the links are a function of the *set* of records:
each record re-checks its episode against every other, and the pairs linked at the end are the
same whatever order the owners' records arrived in (a test delivers them in both orders). A
peer is described by what its first record fixes (metric, direction, slice, start), so what a
message says about it does not depend on when the link was found.

**What Slack shows, and crash safety.** Each episode's entry holds its `links` and the links its
parents were last `shown` with, written only after Slack accepted the update (the notification
log's rule). `stale` lists the episodes whose parents lag their links: the notifier updates them
(chat.update, never a new message) and calls `shown`. A notifier killed in between finds them
stale again when it handles the record a second time, and a repeated chat.update changes nothing.

Pure: the store is a plain mapping (a Faust table live, co-partitioned with the alerts topic;
values replaced, never mutated in place).

>>> from stream_guard.types import AlertRecord
>>> corr = Correlator({})
>>> corr.observe(_example("gmv", "ep-g", "14:00", "14:15"))
[]
>>> corr.observe(_example("complaint_rate", "ep-c", "14:05", "14:10"))
['ep-c', 'ep-g']
>>> [p.metric for p in corr.peers("ep-g")], corr.stale(["ep-g", "ep-c"])
(['complaint_rate'], ['ep-g', 'ep-c'])
>>> corr.shown("ep-g"); corr.stale(["ep-g"])
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from stream_guard.errors import InvalidEvent
from stream_guard.explain.context import overlaps
from stream_guard.types import AlertRecord, epoch_ms, format_slice, slice_key

__all__ = ["MAX_LINKS", "MAX_SLICES", "RETENTION_MS", "Correlator", "Peer"]

MAX_LINKS = 50
"""Links kept per episode: the first by (start, metric, episode id). Keeping the k smallest of a
set does not depend on the order its members came in, so the cap keeps the final state fixed."""
MAX_SLICES = 64
"""Slices remembered per episode (its own and the ones that fired): the first in slice order. An
episode that fired in more loses some, and with them the guarantee that its links do not depend
on arrival order (a link found through a slice later pushed out is kept; one not yet found is
not); rules keep firing slices to `max_slices` (5 by default), far below."""
RETENTION_MS = 5 * 24 * 3_600_000
"""An episode is forgotten this long (event time) after the newest window the notifier saw
ended past its last firing window: the notification log's 5 days, so a thread the log still
knows still has its links."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Another metric's episode, as its first record fixes it (what a message names)."""

    episode_id: str
    metric: str
    direction: str
    slice: Mapping[str, str]
    started_ms: int

    def order(self) -> tuple[int, str, str]:
        return (self.started_ms, self.metric, self.episode_id)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "slice": dict(self.slice)}


@dataclass(frozen=True, slots=True)
class _Episode:
    """One episode's entry: what its records said, its links and what its parents show."""

    peer: Peer
    start_ms: int  # the start of the first window it fired in
    end_ms: int  # the end of the last window it fired in (its start before any fired)
    slices: tuple[Mapping[str, str], ...]  # where it fired (its own slice when none said)
    links: tuple[Peer, ...] = ()
    shown: tuple[str, ...] = ()  # the episode ids of the links its parents show
    local: bool = False  # its records come to this notifier (else only its statuses)
    told: Mapping[str, Any] | None = None  # what other notifiers were last told of it

    def overlaps(self, other: _Episode) -> bool:
        """Different metrics, overlapping spans and overlapping slices."""
        mine, theirs = self.peer, other.peer
        return (mine.metric != theirs.metric
                and self.start_ms < other.end_ms and other.start_ms < self.end_ms
                and any(overlaps(a, b) for a in self.slices for b in other.slices))

    def merged(self, other: _Episode) -> _Episode:
        """This entry grown by what another notifier says of the same episode."""
        return replace(self, start_ms=min(self.start_ms, other.start_ms),
                       end_ms=max(self.end_ms, other.end_ms),
                       slices=_union(self.slices, other.slices))

    def linked(self, peer: Peer) -> _Episode:
        links = {p.episode_id: p for p in (*self.links, peer)}.values()
        return replace(self, links=tuple(sorted(links, key=Peer.order)[:MAX_LINKS]))

    def to_json(self) -> dict[str, Any]:
        return {"peer": self.peer.to_json(), "start_ms": self.start_ms, "end_ms": self.end_ms,
                "slices": [dict(s) for s in self.slices],
                "links": [p.to_json() for p in self.links], "shown": list(self.shown),
                "local": self.local, "told": self.told}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Episode:
        return cls(Peer(**data["peer"]), int(data["start_ms"]), int(data["end_ms"]),
                   tuple(dict(s) for s in data["slices"]),
                   tuple(Peer(**p) for p in data["links"]), tuple(data["shown"]),
                   bool(data.get("local", False)), data.get("told"))


class Correlator:
    """Per-episode status from the alert records, and the links between co-moving episodes."""

    def __init__(self, store: MutableMapping[str, dict[str, Any]]) -> None:
        self.store = store  # episode id -> _Episode.to_json()
        # episode id -> (the stored value, decoded): a record is checked against every stored
        # episode, and decoding them all each time cost ~5 ms a record at 1,000 episodes. Valid
        # while the store returns that very object (a dict, Faust's memory store); a store that
        # decodes anew (or a rebalance that restored other values) just misses.
        self._decoded: dict[str, tuple[dict[str, Any], _Episode]] = {}

    def observe(self, alert: AlertRecord) -> list[str]:
        """Learn from one record (firing or resolved; a silenced copy teaches nothing new);
        returns the episodes that gained a link, sorted. Its episode is *local*: this
        notifier has its records (and its parents)."""
        if alert.status not in ("firing", "resolved"):
            return []
        before = self._get(alert.episode_id)
        episode = replace(_grown(before, alert), local=True)
        return [] if episode == before else self._settle(alert.episode_id, episode)

    def status(self, episode_id: str) -> dict[str, Any] | None:
        """What other notifiers learn of an episode (`learn`): its span and slices, no links."""
        episode = self._get(episode_id)
        if episode is None:
            return None
        return {k: v for k, v in episode.to_json().items()
                if k not in ("links", "shown", "local", "told")}

    def learn(self, status: Mapping[str, Any]) -> list[str]:
        """Another notifier's `status` of one of its episodes (alerts with several partitions:
        one notifier per partition, each told every other's statuses); merged, never shrunk,
        so statuses may come in any order or twice. Returns the episodes that gained a link;
        an unreadable status raises InvalidEvent."""
        try:
            incoming = _Episode.from_json({**status, "links": [], "shown": []})
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidEvent("invalid_comoving_status", repr(exc)) from None
        before = self._get(incoming.peer.episode_id)
        episode = incoming if before is None else before.merged(incoming)
        return [] if episode == before else self._settle(incoming.peer.episode_id, episode)

    def is_local(self, episode_id: str) -> bool:
        episode = self._get(episode_id)
        return episode is not None and episode.local

    def local(self) -> list[str]:
        """The episodes whose records come to this notifier."""
        return [k for k, v in sorted(self.store.items()) if self._decode(k, v).local]

    def told(self, episode_id: str) -> Mapping[str, Any] | None:
        """What other notifiers were last told of an episode (`mark_told`)."""
        episode = self._get(episode_id)
        return None if episode is None else episode.told

    def mark_told(self, episode_id: str, message: Mapping[str, Any]) -> None:
        """Other notifiers have `message` about the episode (written after they got it, so a
        notifier killed before finds it untold and tells again: a status merges idempotently)."""
        episode = self._get(episode_id)
        if episode is not None and episode.told != message:
            self._put(episode_id, replace(episode, told=dict(message)))

    def _settle(self, episode_id: str, episode: _Episode) -> list[str]:
        """Save the grown `episode`, linked both ways with every episode it now overlaps."""
        changed: set[str] = set()
        for other_id, other in self._others(episode_id):
            if episode.overlaps(other) and other_id not in {p.episode_id for p in episode.links}:
                episode = episode.linked(other.peer)
                self._put(other_id, other.linked(episode.peer))
                changed |= {other_id, episode_id}
        self._put(episode_id, episode)
        return sorted(changed)

    def peers(self, episode_id: str) -> list[Peer]:
        """The episodes linked to `episode_id`, by start (what its messages name)."""
        episode = self._get(episode_id)
        return list(episode.links) if episode else []

    def linked_to(self, episode_id: str) -> list[str]:
        return [p.episode_id for p in self.peers(episode_id)]

    def stale(self, episode_ids: Iterable[str]) -> list[str]:
        """Those of `episode_ids` that are local and whose parents do not show all their links
        yet (another notifier's episodes are its to show)."""
        out = []
        for episode_id in episode_ids:
            episode = self._get(episode_id)
            if episode is not None and episode.local and _ids(episode.links) != episode.shown:
                out.append(episode_id)
        return out

    def shown(self, episode_id: str) -> None:
        """Slack accepted parents of `episode_id` rendered with its current links."""
        episode = self._get(episode_id)
        if episode is not None and episode.shown != _ids(episode.links):
            self._put(episode_id, replace(episode, shown=_ids(episode.links)))

    def forget(self) -> int:
        """Drop episodes whose last firing window ended `RETENTION_MS` before the newest one
        seen (event time); returns how many went. Their peers keep naming them."""
        entries = {k: self._decode(k, v) for k, v in list(self.store.items())}
        newest = max((e.end_ms for e in entries.values()), default=0)
        gone = [k for k, e in entries.items() if newest - e.end_ms > RETENTION_MS]
        for episode_id in gone:
            del self.store[episode_id]
        self._decoded = {k: v for k, v in self._decoded.items() if k in self.store}
        return len(gone)

    def _others(self, episode_id: str) -> list[tuple[str, _Episode]]:
        return [(k, self._decode(k, v)) for k, v in sorted(self.store.items())
                if k != episode_id]

    def _get(self, episode_id: str) -> _Episode | None:
        data = self.store.get(episode_id)
        return None if data is None else self._decode(episode_id, data)

    def _decode(self, episode_id: str, data: dict[str, Any]) -> _Episode:
        cached = self._decoded.get(episode_id)
        if cached is not None and cached[0] is data:
            return cached[1]
        episode = _Episode.from_json(data)
        self._decoded[episode_id] = (data, episode)
        return episode

    def _put(self, episode_id: str, episode: _Episode) -> None:
        data = episode.to_json()
        self.store[episode_id] = data
        self._decoded[episode_id] = (data, episode)


def _ids(links: Iterable[Peer]) -> tuple[str, ...]:
    return tuple(p.episode_id for p in links)


def _grown(episode: _Episode | None, alert: AlertRecord) -> _Episode:
    """The entry after `alert`: a firing record extends the span and adds its slices."""
    if episode is None:
        started = epoch_ms(alert.started_at)
        peer = Peer(alert.episode_id, alert.metric, alert.direction, dict(alert.slice), started)
        own: tuple[Mapping[str, str], ...] = () if alert.status == "firing" else (peer.slice,)
        episode = _Episode(peer, started, started, own)
    if alert.status != "firing":
        return episode
    fired = [dict(s.slice) for s in alert.firing_slices] or [dict(alert.slice)]
    return replace(episode, start_ms=min(episode.start_ms, epoch_ms(alert.window_start)),
                   end_ms=max(episode.end_ms, epoch_ms(alert.window_end)),
                   slices=_union(episode.slices, fired))


def _union(
    mine: Iterable[Mapping[str, str]], theirs: Iterable[Mapping[str, str]]
) -> tuple[Mapping[str, str], ...]:
    """Both sets of slices, the first `MAX_SLICES` in slice order (whatever came first)."""
    slices = {format_slice(slice_key(s)): s for s in (*mine, *theirs)}
    return tuple(slices[k] for k in sorted(slices)[:MAX_SLICES])


def _example(metric: str, episode_id: str, start: str, end: str) -> AlertRecord:
    """A firing record of the platform for the doctest (times of 2026-03-04, UTC)."""
    day = "2026-03-04T"
    return AlertRecord.parse({
        "schema": 1, "fingerprint": f"fp-{metric}", "episode_id": episode_id, "sequence": 0,
        "status": "firing", "reason": "new", "metric": metric, "description": "",
        "rule_version": f"{metric}@1", "owner": None, "runbook": None, "dashboard": None,
        "route": "default", "slice": {}, "direction": "up",
        "window_start": f"{day}{start}:00Z", "window_end": f"{day}{end}:00Z", "value": 1.0,
        "expected": 0.5, "score": 5.0, "severity": "warning", "started_at": f"{day}{start}:00Z",
        "peak_score": 5.0, "firing_slices": [], "hints": []})
