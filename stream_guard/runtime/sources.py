"""① + ② on the live side: one pre-aggregating source per consumed partition.

Each partition of an event topic gets its own `Engine` used as a *source*: it decodes and
validates (dead letters), counts late events against this partition's own watermark, and gathers
window deltas. It never closes a window: after each batch, `SourcePool.reports` hands every
metric's owner the deltas gathered since the previous batch (`WindowAggregator.take_open`), so a
source keeps no state that would be lost in a crash between two batches -- the batch's offsets
are acknowledged only after its reports were sent (at-least-once, see runtime/app.py).

Each report says which offsets of its partition it covers, so that the owner can drop one it has
merged already; for that to be exact, a partition resumed after a crash is cut where its previous
consumer cut it (`resume`, with the offsets runtime/resume.py reads back): every report is then
either one the owner has merged, as a whole, or new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_guard.config.rules import MetricRule
from stream_guard.engine import INTERVENTIONS_TOPIC, Engine, EngineStats
from stream_guard.runtime.reports import Report

__all__ = ["Source", "SourcePool", "expected_sources", "source_name"]


def source_name(topic: str, partition: int) -> str:
    """How reports and owners name the source of a partition."""
    return f"{topic}/{partition}"


@dataclass
class Source:
    name: str  # "topic/partition"
    engine: Engine
    dirty: bool = False
    interventions: list[Any] = field(default_factory=list)
    first_offset: int = -1  # of what was consumed since the last report (-1: nothing)
    next_offset: int = -1
    cuts: list[int] = field(default_factory=list)  # where to end reports, ascending (`resume`)


@dataclass(frozen=True, slots=True)
class _Segment:
    """What one source says in its next reports, before the send time is known."""

    source: str
    watermark_ms: int
    by_metric: list[list[tuple[int, Any]]]
    interventions: list[Any]
    first_offset: int
    next_offset: int


class SourcePool:
    """The sources of the partitions this worker consumes, created on first sight."""

    def __init__(self, new_engine: Callable[[], Engine], metrics: list[str]) -> None:
        self._new_engine = new_engine
        self._sources: dict[tuple[str, int], Source] = {}
        self._sealed: list[_Segment] = []  # cut before the end of the current batch
        self.metrics = metrics  # in rule order, as the engines' metric indexes

    def __contains__(self, partition: tuple[str, int]) -> bool:
        return partition in self._sources

    def resume(self, topic: str, partition: int, cuts: Iterable[int]) -> None:
        """Starts the source of a partition that reports must end at `cuts` (offsets, the
        `next_offset`s of the reports its previous consumer sent beyond where it resumes)."""
        self._source(topic, partition).cuts = sorted(cuts)

    def _source(self, topic: str, partition: int) -> Source:
        src = self._sources.get((topic, partition))
        if src is None:
            src = Source(source_name(topic, partition), self._new_engine())
            self._sources[(topic, partition)] = src
        return src

    def ingest(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        """One record of logical `topic` (a bytes value: one event, a JSON array or JSONL)."""
        src = self._source(topic, partition)
        if src.cuts and offset >= src.cuts[0]:
            if (segment := self._segment(src)) is not None:
                self._sealed.append(segment)
            while src.cuts and src.cuts[0] <= offset:
                del src.cuts[0]
        src.engine.ingest(topic, value, f"{partition}:{offset}")
        if not src.dirty:
            src.dirty, src.first_offset = True, offset
        src.next_offset = offset + 1
        if topic == INTERVENTIONS_TOPIC:
            src.interventions.append(value.decode("utf-8", "replace"))

    def reports(self, now_ms: int) -> list[Report]:
        """One report per metric for every source that consumed something since the last call
        (and for every segment cut since, first)."""
        segments, self._sealed = self._sealed, []
        segments += filter(None, map(self._segment, self._sources.values()))
        return [Report(metric, seg.source, seg.watermark_ms, seg.by_metric[m],
                       seg.interventions, now_ms, seg.first_offset, seg.next_offset)
                for seg in segments for m, metric in enumerate(self.metrics)]

    def _segment(self, src: Source) -> _Segment | None:
        """Takes what `src` gathered since its last report (None: nothing to say)."""
        if not src.dirty:
            return None
        src.dirty = False
        agg = src.engine.aggregator
        if agg.max_ts is None:  # only invalid events so far: nothing to say
            return None
        by_metric: list[list[tuple[int, Any]]] = [[] for _ in self.metrics]
        for partial in agg.take_open():
            by_metric[partial.metric_index].append((partial.window_start_ms, partial.slices))
        segment = _Segment(src.name, agg.max_ts, by_metric, src.interventions,
                           src.first_offset, src.next_offset)
        src.interventions = []
        return segment

    def forget(self, partitions: Iterable[tuple[str, int]]) -> list[EngineStats]:
        """Drops the sources of revoked partitions (their deltas were all reported already);
        returns their counters, for the metrics to keep."""
        gone = [self._sources.pop(tp, None) for tp in partitions]
        return [src.engine.stats for src in gone if src is not None]

    def stats(self) -> list[EngineStats]:
        return [src.engine.stats for src in self._sources.values()]


def expected_sources(
    rules: Iterable[MetricRule], partitions: Mapping[str, int]
) -> dict[str, set[str]]:
    """Metric -> the source names ("topic/partition") whose watermarks gate its windows."""
    return {
        r.metric: {source_name(src.topic, p) for src in r.sources
                   for p in range(partitions[src.topic])}
        for r in rules
    }
