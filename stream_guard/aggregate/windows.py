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

from stream_guard.aggregate.plan import Contribution, compile_plans, slice_keys
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
        self._open: list[dict[int, Accumulators]] = [{} for _ in rules]
        self._closed_until: list[int | None] = [None for _ in rules]
        self.max_ts: int | None = None
        self.late: Counter[tuple[str, str]] = Counter()  # (topic, metric) -> events
        self.dropped_series: Counter[str] = Counter()  # metric -> updates refused by max_series

    def topics(self) -> frozenset[str]:
        return frozenset(self._plans)

    def add(self, topic: str, ts_ms: int, obj: Mapping[str, Any]) -> None:
        """Counts one validated event into every metric window it belongs to."""
        if self.max_ts is None or ts_ms > self.max_ts:
            self.max_ts = ts_ms
        for c in self._plans.get(topic, ()):
            if c.where and not c.matches(obj):
                continue
            self._add(c, topic, ts_ms, obj)

    def _add(self, c: Contribution, topic: str, ts_ms: int, obj: Mapping[str, Any]) -> None:
        m = c.metric_index
        start = ts_ms - ts_ms % c.width_ms
        closed = self._closed_until[m]
        # Late = its window is closed, or closable by the watermark (whether or not close() has
        # run yet): the verdict depends on the events seen so far, never on when close() runs.
        if (closed is not None and start < closed) or (
            start + c.width_ms + self._lateness[m] <= self.max_ts  # type: ignore[operator]
        ):
            self.late[(topic, self.rules[m].metric)] += 1
            return
        bucket = self._open[m].get(start)
        if bucket is None:
            bucket = self._open[m][start] = {}
        a, b = c.increments(obj)
        for key in slice_keys(c, obj):
            acc = bucket.get(key)
            if acc is None:
                if len(bucket) >= self._max_series[m]:
                    self.dropped_series[self.rules[m].metric] += 1
                    continue
                acc = bucket[key] = [0.0, 0.0]
            acc[0] += a
            acc[1] += b

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
            if start is None:
                if not self._open[m]:
                    continue
                start = min(self._open[m])
            while start + width <= mark:
                yield Partial(m, start, self._open[m].pop(start, {}))
                start += width
                self._closed_until[m] = start

    def take_open(self) -> list[Partial]:
        """Hands over (and forgets) what every open window gathered since the last call.

        A live source sends these deltas on and keeps nothing: the owner of the metric merges
        them and decides when a window closes. Lateness is still judged here, by this source's
        watermark.
        """
        out = [Partial(m, start, acc) for m, windows in enumerate(self._open)
               for start, acc in sorted(windows.items())]
        for windows in self._open:
            windows.clear()
        return out

    def open_windows(self) -> int:
        return sum(len(w) for w in self._open)
