"""Merged window accumulators → one MetricPoint per (metric, slice, window).

A slice that was seen before but had no event in this window still gets a point (value 0 for
sums and counts): a slice going silent is exactly what a GMV outage looks like. Slices unseen
for `ttl_windows` are forgotten (and their detectors with them: `forgotten`), bounding memory.

**Admission** (bounded state whatever the cardinality of a dimension): an established slice --
one that already has a series -- always keeps it, so a flood of new values can never push it
out. A value new in this window earns a series of its own only with volume (at least
`MIN_NEW_EVENTS` events and 0.1% of the window's total) and while the metric has fewer than
`max_series` series, at most `MAX_NEW_PER_WINDOW` per window, largest first; the rest are
added up into the `other` value of their dimension(s), counted in `folded`. At the cap, series
silent for hours give way to new ones, and the cap also bounds the detectors' bytes
(aggregate/bounds.py: `evicted`, `admitted`).

>>> from datetime import timedelta
>>> from stream_guard.config.rules import MetricRule
>>> rule = MetricRule.model_validate({"metric": "gmv", "description": "d", "owner": "S1",
...     "value": "sum", "source": {"topic": "orders", "field": "gmv", "aggregate": "sum"},
...     "window": "15m", "dimensions": ["region"], "detector": {"type": "threshold"},
...     "alert": {"route": "r"}})
>>> b = PointBuilder(rule)
>>> window = {(): [120.0, 12.0], (("region", "EU"),): [100.0, 10.0]}
>>> window |= {(("region", f"junk{i}"),): [10.0, 1.0] for i in range(2)}
>>> sorted(p.slice for p in b.build(0, window))
[(), (('region', 'EU'),), (('region', 'other'),)]
>>> b.folded
2
"""

from __future__ import annotations

from stream_guard.aggregate.bounds import SeriesBound
from stream_guard.aggregate.windows import OTHER, Accumulators, merge_into
from stream_guard.config.rules import MetricRule
from stream_guard.types import MetricPoint, SliceKey

__all__ = ["MAX_NEW_PER_WINDOW", "MIN_NEW_EVENTS", "OTHER", "PointBuilder"]

MIN_NEW_EVENTS = 2
MAX_NEW_PER_WINDOW = 50


class PointBuilder:
    """Turns the accumulators of a closed window of one metric into points."""

    admitted = 0  # class defaults: a builder saved before these existed reads them as 0
    _bound: SeriesBound | None = None

    def __init__(self, rule: MetricRule, ttl_windows: int | None = None) -> None:
        self.rule = rule
        self.width_ms = int(rule.window.total_seconds() * 1000)
        self.ttl_windows = ttl_windows or max(1, int(7 * 86400_000 / self.width_ms))
        self._last_seen: dict[SliceKey, int] = {}
        self.folded = 0  # slice-windows folded into `other` (new values without volume)
        self.forgotten: list[SliceKey] = []  # slices forgotten by the last build

    def build(self, window_start_ms: int, slices: Accumulators) -> list[MetricPoint]:
        evicted: list[SliceKey] = []
        slices = self._admit(slices, window_start_ms, evicted)
        for key in slices:
            self._last_seen[key] = window_start_ms
        horizon = window_start_ms - self.ttl_windows * self.width_ms
        expired = [k for k, seen in self._last_seen.items() if seen < horizon]
        for key in expired:
            del self._last_seen[key]
        self.forgotten = evicted + expired  # evicted: already out of _last_seen
        end = window_start_ms + self.width_ms
        points = []
        for key in sorted(self._last_seen):
            num, den = slices.get(key, (0.0, 0.0))
            value = self._value(num, den)
            if value is not None:
                points.append(
                    MetricPoint(self.rule.metric, key, window_start_ms, end, value, num, den)
                )
        return points

    def single_series(self) -> frozenset[SliceKey]:
        """The single-dimension slices with a series of their own."""
        return frozenset(k for k in self._last_seen if len(k) == 1)

    def has_series(self, key: SliceKey) -> bool:
        """Whether the slice has a series of its own (it was admitted and not forgotten)."""
        return key in self._last_seen

    @property
    def bound(self) -> SeriesBound:
        if self._bound is None:
            self._bound = SeriesBound(self.rule)
        return self._bound

    def _admit(self, slices: Accumulators, start_ms: int, evicted: list[SliceKey]
               ) -> Accumulators:
        """The window with every slice that gets no series of its own folded into `other`
        (long-silent series evicted, into `evicted`, to make room at the cap)."""
        known = self._last_seen
        new = [k for k in slices if k and k not in known]
        if not new:
            return slices
        total = slices.get((), (0.0, 0.0))
        floor = max(MIN_NEW_EVENTS, 0.001 * _volume(total))
        ranked = sorted((k for k in new if _volume(slices[k]) >= floor and k[0][1] != OTHER),
                        key=lambda k: (-_volume(slices[k]), k))
        wanted = min(MAX_NEW_PER_WINDOW, len(ranked))
        evicted += self.bound.make_room(known, wanted, start_ms)
        room = min(wanted, self.bound.room(len(known)))
        admitted = set(ranked[:room])
        self.admitted += len(admitted)
        out = {k: acc for k, acc in slices.items() if not k or k in known or k in admitted}
        for key in new:
            if key not in admitted and key not in out:
                merge_into(out, {tuple((d, OTHER) for d, _ in key): slices[key]})
                self.folded += 1
        return out

    def _value(self, num: float, den: float) -> float | None:
        if self.rule.value in ("sum", "count"):
            return num
        return num / den if den > 0 else None



def _volume(acc: list[float] | tuple[float, float]) -> float:
    """Events behind an accumulator: its count (denominator), else its numerator."""
    return acc[1] if acc[1] > 0 else abs(acc[0])
