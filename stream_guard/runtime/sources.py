"""① + ② on the live side: one pre-aggregating source per consumed partition.

Each partition of an event topic gets its own `Engine` used as a *source*: it decodes and
validates (dead letters), counts late events against this partition's own watermark, and gathers
window deltas. It never closes a window: after each batch, `SourcePool.reports` hands every
metric's owner the deltas gathered since the previous batch (`WindowAggregator.take_open`), so a
source keeps no state that would be lost in a crash between two batches -- the batch's offsets
are acknowledged only after its reports were sent (at-least-once, see runtime/app.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_guard.config.rules import MetricRule
from stream_guard.engine import INTERVENTIONS_TOPIC, Engine, EngineStats
from stream_guard.runtime.reports import Report

__all__ = ["Source", "SourcePool", "expected_sources"]


@dataclass
class Source:
    name: str  # "topic/partition"
    engine: Engine
    dirty: bool = False
    interventions: list[Any] = field(default_factory=list)


class SourcePool:
    """The sources of the partitions this worker consumes, created on first sight."""

    def __init__(self, new_engine: Callable[[], Engine], metrics: list[str]) -> None:
        self._new_engine = new_engine
        self._sources: dict[tuple[str, int], Source] = {}
        self.metrics = metrics  # in rule order, as the engines' metric indexes

    def ingest(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        """One record of logical `topic` (a bytes value: one event, a JSON array or JSONL)."""
        src = self._sources.get((topic, partition))
        if src is None:
            src = self._sources[(topic, partition)] = Source(f"{topic}/{partition}",
                                                             self._new_engine())
        src.engine.ingest(topic, value, f"{partition}:{offset}")
        src.dirty = True
        if topic == INTERVENTIONS_TOPIC:
            src.interventions.append(value.decode("utf-8", "replace"))

    def reports(self, now_ms: int) -> list[Report]:
        """One report per metric for every source that consumed something since the last call."""
        out: list[Report] = []
        for src in self._sources.values():
            if not src.dirty:
                continue
            agg = src.engine.aggregator
            if agg.max_ts is None:  # only invalid events so far: nothing to say
                src.dirty = False
                continue
            by_metric: list[list[tuple[int, Any]]] = [[] for _ in self.metrics]
            for partial in agg.take_open():
                by_metric[partial.metric_index].append((partial.window_start_ms, partial.slices))
            for m, metric in enumerate(self.metrics):
                out.append(Report(metric, src.name, agg.max_ts, by_metric[m],
                                  src.interventions, now_ms))
            src.interventions = []
            src.dirty = False
        return out

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
        r.metric: {f"{src.topic}/{p}" for src in r.sources for p in range(partitions[src.topic])}
        for r in rules
    }
