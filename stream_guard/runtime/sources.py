"""①–② on the live side: one source stage (aggregate/source.py) per consumed partition.

Each partition of an event topic gets its own `SourceStage`, exactly as in replay: it decodes
and validates (dead letters), refuses events dated after their Kafka timestamp by more than the
allowed skew, drops duplicate event ids, counts late events against this partition's robust
watermark, and gathers window deltas. It never closes a window: after each batch,
`SourcePool.reports` hands the owner of every metric it feeds the deltas gathered since the
previous batch (and every owner the governance actions it consumed), so a source keeps no
window state that a crash between two batches would lose -- the batch's
offsets are acknowledged only after its reports were sent (at-least-once, see runtime/app.py).

Each report says which offsets of its partition it covers, so that the owner can drop one it has
merged already; for that to be exact, a partition resumed after a crash is cut where its previous
consumer cut it (`resume`, with the offsets runtime/resume.py reads back): every report is then
either one the owner has merged, as a whole, or new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from stream_guard.aggregate.cube import WindowCube
from stream_guard.aggregate.merger import expected_sources, source_name
from stream_guard.aggregate.source import SourceStage
from stream_guard.aggregate.windows import by_metric
from stream_guard.runtime.reports import NO_WATERMARK, Report
from stream_guard.stats import EngineStats

__all__ = ["Source", "SourcePool", "expected_sources", "source_name"]


@dataclass
class Source:
    name: str  # "topic/partition"
    stage: SourceStage
    feeds: frozenset[int]  # the metrics reading its topic (indexes)
    dirty: bool = False
    first_offset: int = -1  # of what was consumed since the last report (-1: nothing)
    next_offset: int = -1
    cuts: list[int] = field(default_factory=list)  # where to end reports, ascending (`resume`)


@dataclass(frozen=True, slots=True)
class _Segment:
    """What one source says in its next reports, before the send time is known."""

    source: str
    feeds: frozenset[int]
    watermark_ms: int
    by_metric: list[list[tuple[int, Any]]]
    cubes: list[list[tuple[int, WindowCube]]]  # per metric, the cubes handed over
    interventions: list[Any]
    first_offset: int
    next_offset: int


class SourcePool:
    """The sources of the partitions this worker consumes, created on first sight."""

    def __init__(self, new_stage: Callable[[], SourceStage], metrics: list[str]) -> None:
        self._new_stage = new_stage
        self._sources: dict[tuple[str, int], Source] = {}
        self._sealed: list[_Segment] = []  # cut before the end of the current batch
        self.metrics = metrics  # in rule order, as the stages' metric indexes

    def __contains__(self, partition: tuple[str, int]) -> bool:
        return partition in self._sources

    def resume(self, topic: str, partition: int, cuts: Iterable[int], start: int) -> None:
        """Starts the source of a partition at offset `start`, with reports that must end at
        `cuts` (offsets, the `next_offset`s of the reports its previous consumer sent beyond
        where it resumes)."""
        src = self._source(topic, partition)
        src.cuts, src.next_offset = sorted(cuts), start

    def warm(self, topic: str, partition: int, records: Iterable[tuple[int, bytes, int | None]],
             ) -> None:
        """Re-reads (offset, value, arrival) records its previous consumer read before the
        partition's resume offset (runtime/resume.py `history`): the source then decides
        (late, duplicate, folded) as that consumer would have, and reports none of them."""
        self._source(topic, partition).stage.warm(
            (topic, value, f"{partition}:{offset}", arrival) for offset, value, arrival in records)

    def expected(self, topic: str, partition: int) -> int | None:
        """The next offset of the partition to ingest (None: nothing ingested yet)."""
        src = self._sources.get((topic, partition))
        return None if src is None or src.next_offset < 0 else src.next_offset

    def horizon_ms(self) -> int:
        """How far back in event time a source's decisions look."""
        return self._new_stage().horizon_ms

    def _source(self, topic: str, partition: int) -> Source:
        src = self._sources.get((topic, partition))
        if src is None:
            stage = self._new_stage()
            src = Source(source_name(topic, partition), stage, stage.feeds(topic))
            self._sources[(topic, partition)] = src
        return src

    def ingest(
        self, topic: str, partition: int, offset: int, value: bytes, arrival_ms: int | None
    ) -> None:
        """One record of logical `topic` (a bytes value: one event, a JSON array or JSONL)
        that arrived at `arrival_ms` (its Kafka timestamp)."""
        src = self._source(topic, partition)
        if src.cuts and offset >= src.cuts[0]:
            if (segment := self._segment(src)) is not None:
                self._sealed.append(segment)
            while src.cuts and src.cuts[0] <= offset:
                del src.cuts[0]
        src.stage.ingest(topic, value, f"{partition}:{offset}", arrival_ms)
        if not src.dirty:
            src.dirty, src.first_offset = True, offset
        src.next_offset = offset + 1

    def reports(self, now_ms: int) -> list[Report]:
        """A report per metric that needs one for every source that consumed something since
        the last call (and for every segment cut since, first): see `_needs`."""
        segments, self._sealed = self._sealed, []
        segments += filter(None, map(self._segment, self._sources.values()))
        return [Report(metric, seg.source, seg.watermark_ms, seg.by_metric[m],
                       seg.interventions, now_ms, seg.first_offset, seg.next_offset,
                       seg.cubes[m])
                for seg in segments for m, metric in enumerate(self.metrics)
                if _needs(seg, m)]

    def _segment(self, src: Source) -> _Segment | None:
        """Takes what `src` gathered since its last report (None: nothing to say)."""
        if not src.dirty:
            return None
        src.dirty = False
        watermark, partials = src.stage.take()
        interventions = [[ts, dict(fields)] for ts, fields in src.stage.take_interventions()]
        if watermark is None:  # only invalid events so far: no event time, offsets still count
            watermark = NO_WATERMARK
        deltas, cubes = by_metric(partials, len(self.metrics))
        return _Segment(src.name, src.feeds, watermark, deltas, cubes, interventions,
                        src.first_offset, src.next_offset)

    def forget(self, partitions: Iterable[tuple[str, int]]) -> list[EngineStats]:
        """Drops the sources of revoked partitions (their deltas were all reported already);
        returns their counters, for the metrics to keep."""
        gone = [self._sources.pop(tp, None) for tp in partitions]
        return [src.stage.stats for src in gone if src is not None]

    def stats(self) -> list[EngineStats]:
        return [src.stage.stats for src in self._sources.values()]


def _needs(seg: _Segment, m: int) -> bool:
    """Whether metric m's owner needs this segment's report.

    Always when the source's topic feeds m: its watermark and liveness gate m's windows, even
    with no deltas. Otherwise only for interventions (every owner names them), or when the
    topic feeds no metric at all (governance actions): then its reports still anchor its
    offsets for a resumed source (runtime/resume.py reads where a source's reports end). A
    report to a metric its topic does not feed would change nothing there but the offsets
    the merger remembers for that source (`MergerState.covered`), which no one reads: that
    source gates none of m's windows. Most reports were such (50 of 76 per batch, one worker,
    shipped rules)."""
    return m in seg.feeds or bool(seg.interventions) or not seg.feeds
