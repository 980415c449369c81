"""Replay: record dumps or plain JSONL through the pipeline, as fast as the CPU allows.

The driver wires the same pieces as the live worker, the same way: records are partitioned by
key as the producer partitions them (murmur2, as Kafka clients do; keyless records go to
partition 0), each partition has its own source stage (aggregate/source.py), each metric a
window merger (aggregate/merger.py) fed every `ADVANCE_EVERY` records with every source's
deltas and watermark, and the closed windows go to the owner of their metric: one engine per
partials partition, over the metrics keyed there, each getting its windows in its own
`Engine.close_order` (stream_guard/ownership.py, as live). Co-moving metrics are linked later,
by the notifier (alert/correlate.py), whatever owner raised them. A file has no arrival
times: ingest/arrival.py estimates them from the stream itself, for the future-timestamp
check. Every source is live until the input ends, then every complete window closes (`final`).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from heapq import merge
from itertools import chain
from pathlib import Path
from typing import IO, Any

from stream_guard.aggregate.merger import WindowMerger, expected_sources, merger_for, source_name
from stream_guard.aggregate.source import GC_THRESHOLDS, Accept, SourceStage
from stream_guard.aggregate.windows import by_metric
from stream_guard.config.calendar import Calendar, load_calendar
from stream_guard.config.rules import MetricRule, load_rules
from stream_guard.config.topics import load_topics
from stream_guard.engine import Engine
from stream_guard.errors import InvalidEvent
from stream_guard.ingest.arrival import BLOCK, WINDOW, ArrivalClock
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.ingest.files import Record, iter_records
from stream_guard.ingest.kafka_batch import event_time, record_partition
from stream_guard.ownership import PARTIALS, close_windows, owner_groups
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord, Score, epoch_ms

__all__ = ["ADVANCE_EVERY", "ReplaySummary", "Replayer", "build_replayer", "iter_inputs",
           "replay", "run_replayer"]

ADVANCE_EVERY = 32_768
"""Records between merges (a multiple of the arrival estimate's BLOCK). What closes, and how,
does not depend on it (the mergers close on watermarks, each owner in its close order, and
`Replayer.advance` returns alerts in close point order), but each merge costs a fresh delta
per source window, its slices admitted again: 2,048 spent about 1 CPU-s more per simulated
week than 32,768."""
KEYS_CACHED = 100_000
"""key -> partition entries kept per partition count (keys are sellers: bounded, then started
over)."""

Route = tuple[Callable[[Any], int], dict[Any, int], dict[int, Accept]]
"""Where the records of a topic go: its validator, key -> partition (shared by the topics of
one partition count: keys are sellers), partition -> acceptor of its source stage."""
Pending = tuple[int | None, Callable[[Any, Any, int | None, str], None], Any, Any, str]
"""A record on its way to its source stage: its time for the arrival estimate, then
``fn(a, b, arrival, origin)`` takes it: an acceptor with its one valid event's (ts_ms, fields),
or `_accept_all` with (acceptor, [(ts_ms, fields, origin)...]) for a record of none or several
valid events (a batch, bytes, an invalid value)."""


class Replayer:
    """Source stages per partition → window mergers → engine, for records in arrival order."""

    def __init__(
        self, rules: list[MetricRule], codec: Codec, calendar: Calendar | None = None,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        on_score: Callable[[Score], None] | None = None,
        partitions: Mapping[str, int] | None = None,
    ) -> None:
        """`partitions` overrides the topics' partition counts (default: topics/*.yaml)."""
        self.rules = rules
        self.codec = codec
        self.stats = EngineStats()
        self.partitions = {name: spec.partitions for name, spec in codec.topics.items()}
        self.partitions.update(partitions or {})
        expected = expected_sources(rules, self.partitions)
        self.mergers: list[WindowMerger] = [merger_for(r, expected[r.metric]) for r in rules]
        # one owner (engine and mergers) per partials partition, as live (stream_guard/ownership.py)
        index = {r.metric: m for m, r in enumerate(rules)}
        self.owners: list[tuple[Engine, dict[int, WindowMerger]]] = [
            (Engine(group, calendar, on_score, self.stats),
             {i: self.mergers[index[r.metric]] for i, r in enumerate(group)})
            for group in owner_groups(rules, self.partitions.get(PARTIALS, 1)).values()]
        self._on_dead_letter = on_dead_letter or (lambda _dl: None)
        self._sources: dict[tuple[str, int], SourceStage] = {}
        self._routes: dict[str, Route] = {}  # topic -> route (str keys cached)
        self._partition_of: dict[int, dict[Any, int]] = {}  # partitions -> key -> partition
        self._lateness_ms = {r.metric: int(r.lateness.total_seconds() * 1000) for r in rules}
        self._waiting: list[list[AlertRecord]] = [[] for _ in self.owners]  # see `_close`
        self.records = 0

    def ingest(
        self, topic: str, key: Any, value: Any, origin: str, arrival_ms: int | None = None
    ) -> None:
        """One record of `topic` (a decoded value, or bytes/str still to decode)."""
        self._source(topic, key).ingest(topic, value, origin, arrival_ms)

    def _source(self, topic: str, key: Any) -> SourceStage:
        return self._stage(topic, self._partition(topic, key))

    def _partition(self, topic: str, key: Any) -> int:
        n = self.partitions.get(topic, 1)
        return record_partition(key, n)

    def _stage(self, topic: str, p: int) -> SourceStage:
        src = self._sources.get((topic, p))
        if src is None:
            src = self._sources[(topic, p)] = SourceStage(self.rules, self.codec, self.stats,
                                                          self._on_dead_letter)
        return src

    def _route(self, topic: str, key: Any) -> tuple[Callable[[Any], int], Accept]:
        """The validator of `topic` and the acceptor of the (topic, key)'s partition, cached
        for str keys (and no key) of topics with a schema."""
        p = self._partition(topic, key)
        validate = self.codec.validator(topic)
        if topic not in self.codec.event_topics:  # every value is refused: no acceptor
            self._stage(topic, p)
            return validate, _refused
        accept = self._stage(topic, p).acceptor(topic)
        if type(key) is str or key is None:
            route = self._routes.get(topic)
            if route is None:
                n = self.partitions.get(topic, 1)
                route = self._routes[topic] = (validate, self._partition_of.setdefault(n, {}), {})
            if len(route[1]) >= KEYS_CACHED:
                route[1].clear()
            route[1][key] = p
            route[2][p] = accept
        return validate, accept

    def read(self, records: Iterator[Record], pending: list[Pending], want: int) -> bool:
        """Decodes records into `pending` (invalid events dead-lettered on the way) until it
        holds `want`; False once the input has ended. The hot loop of replay."""
        routes, append, before = self._routes, pending.append, len(pending)
        try:
            for topic, key, value, origin in records:
                try:
                    validate, partition_of, accepts = routes[topic]
                    accept = accepts[partition_of[key]]
                except (KeyError, TypeError):  # new, or a key that is no str (hostile input)
                    validate, accept = self._route(topic, key)
                if type(value) is dict:
                    try:
                        ts_ms = validate(value)
                    except InvalidEvent as err:
                        append(self._invalid(topic, key, value, origin, err))
                        continue
                    append((ts_ms, accept, ts_ms, value, origin))
                else:
                    events = self._source(topic, key).decode(topic, value, origin)
                    append((None, _accept_all, accept, events, origin))
                if len(pending) >= want:
                    return True
            return False
        finally:
            self.records += len(pending) - before

    def _invalid(
        self, topic: str, key: Any, value: Any, origin: str, err: InvalidEvent
    ) -> Pending:
        src = self._source(topic, key)
        src.dead(self.codec.dead_letter(topic, origin, err, value))
        return event_time(value), _accept_all, None, [], origin

    def advance(self, final: bool = False) -> list[AlertRecord]:
        """Merges what every source gathered; closes what is complete (everything if `final`)."""
        for (topic, p), src in self._sources.items():
            for ts_ms, fields in src.take_interventions():
                for engine, _mergers in self.owners:  # every owner is told of every action
                    engine.add_intervention(ts_ms, fields)
            watermark, partials = src.take()
            if watermark is None:
                continue
            deltas, cubes = by_metric(partials, len(self.rules))
            name = source_name(topic, p)
            for m, merger in enumerate(self.mergers):
                merger.merge(name, deltas[m], watermark, cubes=cubes[m])
        return self._close(final)

    def _close(self, final: bool) -> list[AlertRecord]:
        """What every owner closes, in close point order across owners (at a tie, owner after
        owner; each owner's records in its own order). A record waits until no owner can still
        close a window with an earlier close point (every merger's `frontier` is past it), so
        the order does not depend on how many records an `advance` covers."""
        frontier = math.inf if final else min((m.frontier() for m in self.mergers),
                                              default=math.inf)
        ready = []
        for waiting, (engine, mergers) in zip(self._waiting, self.owners, strict=True):
            waiting += close_windows(engine, mergers, final)[0]
            n = next((i for i, r in enumerate(waiting) if self._close_point(r) > frontier),
                     len(waiting))
            ready.append(waiting[:n])
            del waiting[:n]
        return list(merge(*ready, key=self._close_point))

    def _close_point(self, record: AlertRecord) -> int:
        """When the record's window became closable: its end plus its metric's lateness."""
        return epoch_ms(record.window_end) + self._lateness_ms[record.metric]


@dataclass
class ReplaySummary:
    records: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    seconds: float = 0.0
    replayer: Replayer | None = None

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def counts(self) -> dict[str, Any]:
        """The summary `stream-guard replay --summary` writes: what happened to every record."""
        s = self.replayer.stats if self.replayer is not None else EngineStats()
        return {
            "records": self.records, "alert_records": len(self.alerts),
            "episodes": len({a["episode_id"] for a in self.alerts}),
            "events": dict(s.events), "invalid": _by_reason(s.invalid),
            "late": sum(s.late.values()) + sum(s.isolated_windows.values()),
            "duplicates": sum(s.duplicates.values()),
            "folded": sum(s.folded_series.values()) + sum(s.dropped_series.values()),
            "folded_series": sum(s.folded_series.values()),
            "folded_at_source": sum(s.dropped_series.values()),
            "skipped_windows": sum(s.skipped_windows.values()),
        }


def _by_reason(invalid: Mapping[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_topic, reason), n in invalid.items():
        out[reason] = out.get(reason, 0) + n
    return out


def build_replayer(
    rules_dir: Path, topics_dir: Path | None = None, rules: list[MetricRule] | None = None,
    on_dead_letter: Callable[[DeadLetter], None] | None = None,
    on_score: Callable[[Score], None] | None = None,
) -> Replayer:
    topics = load_topics(topics_dir)
    rules = rules if rules is not None else load_rules(rules_dir, topics)
    calendar = load_calendar(rules_dir / "calendar.yaml")
    return Replayer(rules, Codec(topics), calendar, on_dead_letter, on_score)


def iter_inputs(paths: Iterable[Path]) -> Iterator[Record]:
    """The records of files, as `iter_dump` reads them (plain tuples: `DumpRecord`s are too)."""
    return chain.from_iterable(map(iter_records, paths))  # no generator frame per record


def run_replayer(
    replayer: Replayer,
    records: Iterable[Record],
    on_alert: Callable[[AlertRecord], None],
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Feeds records with their estimated arrival times (ingest/arrival.py, block by block, as
    `produce` stamps them), merging and closing every ADVANCE_EVERY records, then closes
    everything complete; returns how many records."""
    with _worker_gc():
        return _feed(replayer, records, on_alert, on_progress)


@contextmanager
def _worker_gc() -> Iterator[None]:
    """The worker's collector settings for the duration: what exists before (rules, engines,
    modules) out of its sight (`gc.freeze`), `GC_THRESHOLDS`; both undone afterwards."""
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:  # a caller's own frozen objects stay frozen
            gc.unfreeze()


def _feed(
    replayer: Replayer,
    records: Iterable[Record],
    on_alert: Callable[[AlertRecord], None],
    on_progress: Callable[[int], None] | None,
) -> int:
    clock = ArrivalClock()
    pending: list[Pending] = []  # a few blocks: what is accepted was decoded just before
    it, more, since = iter(records), True, 0
    while more or pending:
        if more and len(pending) < WINDOW:
            more = replayer.read(it, pending, WINDOW)
        arrival = clock.block([p[0] for p in pending[:WINDOW]], tail=not more)
        for _t, accept, a, b, origin in pending[:BLOCK]:
            accept(a, b, arrival, origin)
        since += min(BLOCK, len(pending))
        del pending[:BLOCK]
        if since >= ADVANCE_EVERY:
            for alert in replayer.advance():
                on_alert(alert)
            if on_progress is not None:
                on_progress(since)
            since = 0
    for alert in replayer.advance(final=True):
        on_alert(alert)
    if on_progress is not None:
        on_progress(since)
    return replayer.records


def _refused(ts_ms: int, fields: Any, arrival_ms: int | None, origin: str) -> None:
    """The acceptor of a topic without a schema: none of its values is valid."""
    raise AssertionError(f"{origin}: an event of a topic without a schema was accepted")


def _accept_all(
    accept: Accept, events: list[tuple[int, Any, str]], arrival: int | None, _origin: str
) -> None:
    """The valid events of a record of none or several."""
    for ts_ms, fields, origin in events:
        accept(ts_ms, fields, arrival, origin)


def replay(
    replayer: Replayer,
    inputs: list[Path],
    output: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_alert: Callable[[AlertRecord], None] | None = None,
) -> ReplaySummary:
    """Replays `inputs`; alerts go to `output` (JSONL) and `on_alert`."""
    summary = ReplaySummary(replayer=replayer)
    with ExitStack() as stack:
        out: IO[bytes] | None = stack.enter_context(output.open("wb")) if output else None

        def emit(alert: AlertRecord) -> None:
            summary.alerts.append(alert)
            if out is not None:
                out.write(alert.to_json() + b"\n")
            if on_alert is not None:
                on_alert(alert)

        started = time.perf_counter()
        summary.records = run_replayer(replayer, iter_inputs(inputs), emit, on_progress)
        summary.seconds = time.perf_counter() - started
    return summary
