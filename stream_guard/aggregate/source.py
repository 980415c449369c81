"""①–② the source stage: one partition's records in, window deltas out. Replay and live alike.

Everything that can be decided by looking at one partition's records happens here, once, for
both drivers (backtest/replay.py feeds it the records of a file partitioned by key as the
producer does; runtime/sources.py the records of a consumed partition):

1. decode and validate (`Codec`): anything malformed is a dead letter with a reason;
2. event-time sanity: an event dated more than the allowed skew after its arrival (the Kafka
   timestamp live, the file's arrival estimate in replay: ingest/arrival.py) is a dead letter
   `future_timestamp` -- it would otherwise drag the watermark ahead and make everything late;
3. duplicates: an `event_id` seen already on this partition within the dedup horizon (the
   longest window plus lateness of any metric) is dropped and counted;
4. window deltas and lateness against this partition's robust watermark (aggregate/windows.py).

Governance actions are kept as validated `(ts, fields)` for the owners' intervention hints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from stream_guard.aggregate.windows import Partial, WindowAggregator
from stream_guard.config.rules import MetricRule
from stream_guard.errors import InvalidEvent
from stream_guard.explain.context import INTERVENTIONS_TOPIC
from stream_guard.ingest.arrival import MAX_SKEW_MS, is_future
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.stats import EngineStats

__all__ = ["DEDUP_MAX", "GC_THRESHOLDS", "Accept", "SourceStage"]

DEDUP_MAX = 100_000
"""Event ids remembered per partition at most (bounded memory whatever the horizon holds)."""
DEDUP_MIN = 4_096
"""Event ids remembered before the first look for ids past the horizon. After each look, the
next comes once the ids remembered have grown `DEDUP_GROWTH`-fold (amortised O(1) per event:
each look scans the table once), so the table stays within a few times what the horizon holds:
a small table is a cache hit, 100,000 ids are not."""
DEDUP_GROWTH = 4
GC_THRESHOLDS = (10_000, 20, 50)
"""`gc.set_threshold` while records are fed, live (runtime/app.py) and in replay
(backtest/replay.py); CPython's default is 700, 10, 10. Why: draining a backlog of single-event
messages, CPython's cyclic GC took about half of the event loop's time (gc callbacks: ~2.4 s in
14 full collections of ~170 ms each, for ~6 s of draining; 22k events/s, 42k with the GC off).
Nearly every object a message makes (records, Faust messages and events, decoded values) dies
young but outlives a 700-allocation generation while it waits in fetch and stream buffers, so it
is promoted and then walked by full collections. With these thresholds young collections are
rarer than a buffer's turnover and full ones run at most every ~10M allocations: 42k events/s,
the cycles that do form (asyncio futures, exceptions) are still collected."""


Accept = Callable[[int, Mapping[str, Any], "int | None", str], None]
"""``accept(ts_ms, fields, arrival_ms, origin)``: one validated event of a topic (see
`SourceStage.acceptor`)."""

_ACCEPT = """\
    if arrival is not None and ts > arrival + MAX_SKEW_MS:
        future(TOPIC, ts, obj, arrival, origin)
        return
    event_id = obj.get("event_id")
    if event_id is not None:
        if event_id in seen:
            duplicates[TOPIC] += 1
            return
        seen[event_id] = ts
        if len(seen) > LIMIT:
            forget()
    events[TOPIC] += 1"""
"""Event-time sanity (`is_future`), then dedup, then counted: the head of every acceptor."""


class SourceStage:
    """The source stage of one partition."""

    def __init__(
        self, rules: list[MetricRule], codec: Codec, stats: EngineStats,
        on_dead_letter: Callable[[DeadLetter], None],
    ) -> None:
        self.codec = codec
        self.on_dead_letter = on_dead_letter
        self.aggregator = WindowAggregator(rules)
        self.interventions: list[tuple[int, Mapping[str, Any]]] = []
        self.horizon_ms = max((int((r.window + r.lateness).total_seconds() * 1000)
                               for r in rules), default=0)
        """How far back in event time a decision can look (the longest window + lateness)."""
        self._feeds: dict[str, frozenset[int]] = {}  # topic -> the metrics reading it
        for m, rule in enumerate(rules):
            for src in rule.sources:
                self._feeds[src.topic] = self._feeds.get(src.topic, frozenset()) | {m}
        self._seen: dict[Any, int] = {}  # event_id -> event time, in arrival order
        self._limit = min(DEDUP_MIN, DEDUP_MAX)  # ids remembered before the next look
        self._acceptors: dict[str, Accept] = {}
        self._envs: list[dict[str, Any]] = []  # the acceptors' globals (counters rebound)
        self._count_into(stats)

    def feeds(self, topic: str) -> frozenset[int]:
        """The metrics (indexes) reading `topic`: whose windows its partitions gate, as
        `merger.expected_sources` says."""
        return self._feeds.get(topic, frozenset())

    def ingest(self, topic: str, value: Any, origin: str, arrival_ms: int | None) -> None:
        """One record's value (bytes/str still to decode, or a decoded JSON value)."""
        events = self.decode(topic, value, origin)
        if events:  # only then: a topic without a valid event gets no acceptor
            accept = self.acceptor(topic)
            for ts_ms, fields, where in events:
                accept(ts_ms, fields, arrival_ms, where)

    def decode(
        self, topic: str, value: Any, origin: str
    ) -> list[tuple[int, Mapping[str, Any], str]]:
        """The valid events of a record as (ts_ms, fields, origin); the rest dead-lettered."""
        if isinstance(value, bytes | str):  # (no `Event` built: the live hot path)
            valid, dead = self.codec.values(topic, value, origin)
            for dl in dead:
                self.dead(dl)
            return [(ts_ms, fields, origin) for ts_ms, fields in valid]
        try:
            return [(self.codec.validate(topic, value), value, origin)]
        except InvalidEvent as err:
            self.dead(self.codec.dead_letter(topic, origin, err, value))
            return []

    def accept(
        self, topic: str, ts_ms: int, fields: Mapping[str, Any], arrival_ms: int | None,
        origin: str,
    ) -> None:
        """A validated event: event-time sanity, dedup, then into its windows."""
        self.acceptor(topic)(ts_ms, fields, arrival_ms, origin)

    def acceptor(self, topic: str) -> Accept:
        """`accept` for events of `topic`, as one generated function (the hot path: the
        future check, dedup, counting, the watermark and every window update in one frame)."""
        accept = self._acceptors.get(topic)
        if accept is None:
            accept = self._acceptors[topic] = self._compile(topic)
        return accept

    def _compile(self, topic: str) -> Accept:
        env = {"TOPIC": topic, "MAX_SKEW_MS": MAX_SKEW_MS, "LIMIT": self._limit,
               "seen": self._seen, "future": self._future, "forget": self._forget,
               "intervene": self.interventions.append}
        self._envs.append(env)
        self._count_into(self.stats)
        head = _ACCEPT.splitlines()
        if topic == INTERVENTIONS_TOPIC:
            head.append("    intervene((ts, obj))")
        return self.aggregator.compile(topic, "accept(ts, obj, arrival, origin)", head, env)

    def _future(
        self, topic: str, ts_ms: int, fields: Mapping[str, Any], arrival_ms: int, origin: str
    ) -> None:
        assert is_future(ts_ms, arrival_ms)  # the rule `accept` inlines
        detail = (f"ts {ts_ms} is {(ts_ms - arrival_ms) // 1000:,} s after its arrival "
                  f"{arrival_ms} (allowed skew {MAX_SKEW_MS // 1000} s)")
        self.dead(self.codec.dead_letter(
            topic, origin, InvalidEvent("future_timestamp", detail), fields))

    def _forget(self) -> None:
        """Drops ids older than the horizon; then, if still too many, the older half. The next
        look comes when the ids kept have grown `DEDUP_GROWTH`-fold (`DEDUP_MIN` at least,
        `DEDUP_MAX` at most)."""
        wm = self.aggregator.watermark_ms or 0
        keep = {k: t for k, t in self._seen.items() if t >= wm - self.horizon_ms}
        if len(keep) > DEDUP_MAX // 2:
            keep = dict(list(keep.items())[-(DEDUP_MAX // 2):])
        self._seen.clear()  # in place: the acceptors hold it
        self._seen.update(keep)
        self._limit = min(DEDUP_MAX, max(DEDUP_MIN, DEDUP_GROWTH * len(keep)))
        for env in self._envs:
            env["LIMIT"] = self._limit

    def dead(self, dl: DeadLetter) -> None:
        self.stats.invalid[(dl.topic, dl.reason)] += 1
        self.on_dead_letter(dl)

    def take(self) -> tuple[int | None, list[Partial]]:
        """This partition's watermark and the window deltas gathered since the last call."""
        return self.aggregator.watermark_ms, self.aggregator.take_open()

    def take_interventions(self) -> list[tuple[int, Mapping[str, Any]]]:
        out = self.interventions[:]
        self.interventions.clear()  # in place: the acceptors hold it
        return out

    def warm(self, records: Iterable[tuple[str, Any, str, int | None]]) -> None:
        """Re-reads records (topic, value, origin, arrival) that were reported before a restart:
        rebuilds what later decisions depend on -- the watermark, the event ids seen, the slices
        of open windows -- and reports nothing: no delta, dead letter, intervention or count."""
        sink, stats = self.on_dead_letter, self.stats
        self.on_dead_letter = _discard
        self._count_into(EngineStats())
        try:
            for topic, value, origin, arrival_ms in records:
                self.ingest(topic, value, origin, arrival_ms)
        finally:
            self.on_dead_letter = sink
            self._count_into(stats)
        self.take()
        self.take_interventions()

    def _count_into(self, stats: EngineStats) -> None:
        self.stats = stats
        for env in self._envs:
            env.update(events=stats.events, duplicates=stats.duplicates)
        self.aggregator.late = stats.late
        self.aggregator.dropped_series = stats.dropped_series


def _discard(_: DeadLetter) -> None:
    """A dead letter of a record re-read by `SourceStage.warm`: it was sent before."""
