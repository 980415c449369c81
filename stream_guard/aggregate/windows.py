"""② source half: one source partition's event-time windows, handed on as mergeable deltas.

One `WindowAggregator` per source partition, live and in replay. Its watermark is a robust
estimate of the partition's event time: the `ROBUST_RANK`-th largest event time accepted, so no
single event (nor two) can move it. An event whose window the watermark has passed by more than
the metric's allowed lateness is *late*: counted, never merged. The source never closes a
window: `take_open` hands its deltas to the window merger (merger.py), which decides, for every
source at once, when a window is complete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.aggregate.plan import (
    Contribution,
    Feeder,
    OpenWindow,
    compile_feeder,
    compile_plans,
    slot_key,
)
from stream_guard.config.rules import MetricRule
from stream_guard.types import SliceKey

__all__ = [
    "OTHER", "ROBUST_RANK", "SOURCE_SLICES_PER_SERIES", "Accumulators", "Partial",
    "WindowAggregator", "merge_into",
]

Accumulators = dict[SliceKey, list[float]]

ROBUST_RANK = 3
"""The watermark is the 3rd largest event time seen: robust to two outlying events."""
SOURCE_SLICES_PER_SERIES = 10
"""A source window holds up to 10 x max_series slices; beyond (a flood of junk values), new
values go to their dimension's `other` at once. The owner decides which slices get a series
(points.py): with room for 10x, a flood does not crowd out real slices before that."""
OTHER = "other"
_NO_TIME = -(2**63)  # before any event time: an empty slot of the top-3


def merge_into(acc: Accumulators, deltas: Accumulators) -> None:
    """Adds `deltas` to `acc`, slice by slice, in place."""
    for key, (a, b) in deltas.items():
        cur = acc.get(key)
        if cur is None:
            acc[key] = [a, b]
        else:
            cur[0] += a
            cur[1] += b


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
        self._max_slices = [SOURCE_SLICES_PER_SERIES * r.max_series for r in rules]
        self._open: list[dict[int, OpenWindow]] = [{} for _ in rules]
        self._shape: dict[int, Contribution] = {
            c.metric_index: c for plan in self._plans.values() for c in plan
        }  # any contribution of a metric: its dimensions and pairs
        self._feeders: dict[str, Feeder] = {
            topic: compile_feeder(topic, plan, self._open, self._lateness,
                                  self._admit, self._late)
            for topic, plan in self._plans.items()
        }
        self.watermark_ms: int | None = None  # the ROBUST_RANK-th largest event time seen
        self._top = [_NO_TIME] * ROBUST_RANK  # the 3 largest event times, ascending
        self.late: Counter[tuple[str, str]] = Counter()  # (topic, metric) -> events
        self.dropped_series: Counter[str] = Counter()  # metric -> updates folded at the cap

    def topics(self) -> frozenset[str]:
        return frozenset(self._plans)

    def add(self, topic: str, ts_ms: int, obj: Mapping[str, Any]) -> None:
        """Counts one validated event into every metric window it belongs to.

        Late = its window ended more than the lateness before the watermark: the verdict
        depends on the events this source has seen so far, never on when windows close.
        """
        top = self._top  # [3rd, 2nd, 1st largest]: a few comparisons, no sort, per event
        if ts_ms > top[0]:
            if ts_ms > top[1]:
                top[0] = top[1]
                if ts_ms > top[2]:
                    top[1], top[2] = top[2], ts_ms
                else:
                    top[1] = ts_ms
            else:
                top[0] = ts_ms
            if top[0] > _NO_TIME:
                self.watermark_ms = top[0]
        wm = self.watermark_ms  # fewer than ROBUST_RANK events so far: the smallest of them
        if wm is None or (top[0] == _NO_TIME and ts_ms < wm):
            self.watermark_ms = ts_ms
        try:
            feed = self._feeders[topic]
        except KeyError:  # a topic no metric reads
            return
        feed(ts_ms, obj, self.watermark_ms)  # type: ignore[arg-type]  # set just above

    def _admit(self, w: OpenWindow, m: int, slot: int, raw: Any) -> list[float]:
        key = slot_key(self._shape[m], slot, raw)
        acc = w.slices.get(key)
        if acc is None:
            if len(w.slices) >= self._max_slices[m]:  # a flood: into the dimension's `other`
                self.dropped_series[self.rules[m].metric] += 1
                key = tuple((d, OTHER) for d, _ in key)
                acc = w.slices.get(key)
                if acc is None:
                    acc = w.slices[key] = [0.0, 0.0]
                return acc  # not remembered for `raw`: every update of it is counted
            acc = w.slices[key] = [0.0, 0.0]
        w.lookups[slot][raw] = acc
        return acc

    def _late(self, topic: str, m: int) -> None:
        self.late[(topic, self.rules[m].metric)] += 1

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
