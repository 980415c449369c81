"""Merged window accumulators → one MetricPoint per (metric, slice, window).

A slice that was seen before but had no event in this window still gets a point (value 0 for
sums and counts): a slice going silent is exactly what a GMV outage looks like. Slices unseen
for `ttl_windows` are forgotten, bounding memory.
"""

from __future__ import annotations

from stream_guard.aggregate.windows import Accumulators
from stream_guard.config.rules import MetricRule
from stream_guard.types import MetricPoint, SliceKey

__all__ = ["PointBuilder", "merge_accumulators"]


def merge_accumulators(parts: list[Accumulators]) -> Accumulators:
    """Adds accumulators of several sources slice by slice."""
    if len(parts) == 1:
        return parts[0]
    merged: Accumulators = {}
    for part in parts:
        for key, (a, b) in part.items():
            acc = merged.get(key)
            if acc is None:
                merged[key] = [a, b]
            else:
                acc[0] += a
                acc[1] += b
    return merged


class PointBuilder:
    """Turns the accumulators of a closed window of one metric into points."""

    def __init__(self, rule: MetricRule, ttl_windows: int | None = None) -> None:
        self.rule = rule
        self.width_ms = int(rule.window.total_seconds() * 1000)
        self.ttl_windows = ttl_windows or max(1, int(7 * 86400_000 / self.width_ms))
        self._last_seen: dict[SliceKey, int] = {}

    def build(self, window_start_ms: int, slices: Accumulators) -> list[MetricPoint]:
        for key in slices:
            self._last_seen[key] = window_start_ms
        horizon = window_start_ms - self.ttl_windows * self.width_ms
        for key in [k for k, seen in self._last_seen.items() if seen < horizon]:
            del self._last_seen[key]
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

    def _value(self, num: float, den: float) -> float | None:
        if self.rule.value in ("sum", "count"):
            return num
        return num / den if den > 0 else None

    def known_slices(self) -> int:
        return len(self._last_seen)
