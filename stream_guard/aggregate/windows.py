"""Event-time tumbling windows with a watermark, producing mergeable partials.

One `WindowAggregator` per source (a Kafka partition live, the whole input in replay). The
watermark is the largest event time seen minus the metric's allowed lateness; a window closes
once the watermark passes its end. An event for a closed window is *late*: counted, never
merged. Closing yields `Partial`s, which an owner merges across sources (see points.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.aggregate.plan import (
    NOTHING_CLOSED,
    Contribution,
    Feeder,
    OpenWindow,
    compile_feeder,
    compile_plans,
    slot_key,
)
from stream_guard.config.rules import MetricRule
from stream_guard.types import SliceKey

__all__ = ["Partial", "WindowAggregator"]

Accumulators = dict[SliceKey, list[float]]


@dataclass(frozen=True, slots=True)
class Partial:
    """One source's accumulators for one metric window (possibly empty: "nothing here")."""

    metric_index: int
    window_start_ms: int
    slices: Accumulators


class WindowAggregator:
    def __init__(self, rules: list[MetricRule]) -> None:
        self.rules = rules
        self._plans = compile_plans(rules)
        self._width = [int(r.window.total_seconds() * 1000) for r in rules]
        self._lateness = [int(r.lateness.total_seconds() * 1000) for r in rules]
        self._max_series = [r.max_series for r in rules]
        self._open: list[dict[int, OpenWindow]] = [{} for _ in rules]
        # windows before this start are closed; NOTHING_CLOSED until close() closes one
        self._closed_until: list[int] = [NOTHING_CLOSED for _ in rules]
        self._shape: dict[int, Contribution] = {
            c.metric_index: c for plan in self._plans.values() for c in plan
        }  # any contribution of a metric: its dimensions and pairs
        self._feeders: dict[str, Feeder] = {
            topic: compile_feeder(topic, plan, self._open, self._closed_until, self._lateness,
                                  self._admit, self._late)
            for topic, plan in self._plans.items()
        }
        self.max_ts: int | None = None
        self.late: Counter[tuple[str, str]] = Counter()  # (topic, metric) -> events
        self.dropped_series: Counter[str] = Counter()  # metric -> updates refused by max_series

    def topics(self) -> frozenset[str]:
        return frozenset(self._plans)

    def add(self, topic: str, ts_ms: int, obj: Mapping[str, Any]) -> None:
        """Counts one validated event into every metric window it belongs to.

        Late = its window is closed, or closable by the watermark (whether or not close() has
        run yet): the verdict depends on the events seen so far, never on when close() runs.
        """
        max_ts = self.max_ts
        if max_ts is None or ts_ms > max_ts:
            self.max_ts = max_ts = ts_ms
        try:
            feed = self._feeders[topic]
        except KeyError:  # a topic no metric reads
            return
        feed(ts_ms, obj, max_ts)

    def _admit(self, w: OpenWindow, m: int, slot: int, raw: Any) -> list[float]:
        key = slot_key(self._shape[m], slot, raw)
        acc = w.slices.get(key)
        if acc is None:
            if len(w.slices) >= self._max_series[m]:
                self.dropped_series[self.rules[m].metric] += 1
                return [0.0, 0.0]  # refused: this update goes nowhere
            acc = w.slices[key] = [0.0, 0.0]
        w.lookups[slot][raw] = acc
        return acc

    def _late(self, topic: str, m: int) -> None:
        self.late[(topic, self.rules[m].metric)] += 1

    def close(self, watermark_ms: int | None = None, lateness: bool = True) -> Iterator[Partial]:
        """Partials of every window the watermark has passed, oldest first, per metric.

        `watermark_ms` defaults to the largest event time seen; `lateness=False` ignores the
        allowed lateness (end of a replay: nothing more will come).
        """
        base = self.max_ts if watermark_ms is None else watermark_ms
        if base is None:
            return
        for m, width in enumerate(self._width):
            mark = base - (self._lateness[m] if lateness else 0)
            start = self._closed_until[m]
            if start == NOTHING_CLOSED:
                if not self._open[m]:
                    continue
                start = min(self._open[m])
            while start + width <= mark:
                window = self._open[m].pop(start, None)
                yield Partial(m, start, window.slices if window is not None else {})
                start += width
                self._closed_until[m] = start

    def take_open(self) -> list[Partial]:
        """Hands over (and forgets) what every open window gathered since the last call.

        A live source sends these deltas on and keeps nothing: the owner of the metric merges
        them and decides when a window closes. Lateness is still judged here, by this source's
        watermark.
        """
        out = [Partial(m, start, window.slices) for m, windows in enumerate(self._open)
               for start, window in sorted(windows.items())]
        for windows in self._open:
            windows.clear()
        return out

    def open_windows(self) -> int:
        return sum(len(w) for w in self._open)
