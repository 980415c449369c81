"""The engine's plain counters; the Prometheus bundle (observability/metrics.py) exports them.

One `EngineStats` per source partition and one per metric owner (live), or one shared by a whole
replay; the bundle sums them at scrape time, so the hot path only increments a `Counter`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream_guard.aggregate.points import PointBuilder

__all__ = ["EngineStats"]


@dataclass
class EngineStats:
    events: Counter[str] = field(default_factory=Counter)  # topic
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, reason)
    duplicates: Counter[str] = field(default_factory=Counter)  # topic: repeated event ids
    late: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, metric)
    dropped_series: Counter[str] = field(default_factory=Counter)  # metric: folded at a source
    folded_series: Counter[str] = field(default_factory=Counter)  # metric: new slices folded
    admitted_series: Counter[str] = field(default_factory=Counter)  # metric: new series
    evicted_series: Counter[str] = field(default_factory=Counter)  # metric: silent, at the cap
    windows_closed: Counter[str] = field(default_factory=Counter)  # metric
    skipped_windows: Counter[str] = field(default_factory=Counter)  # metric: empty gap skipped
    isolated_windows: Counter[str] = field(default_factory=Counter)  # metric: far-past, dropped
    points: Counter[str] = field(default_factory=Counter)  # metric
    anomalous_points: Counter[str] = field(default_factory=Counter)  # metric
    alerts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # metric, sev, status
    # live owners only (runtime/owner.py): source reports per (metric, outcome), and window
    # deltas that arrived for a window already closed (its source had been idle) per metric
    reports: Counter[tuple[str, str]] = field(default_factory=Counter)
    late_partials: Counter[str] = field(default_factory=Counter)

    def count_series(self, metric: str, before: tuple[int, int, int],
                     builder: PointBuilder) -> None:
        """What one window's admission did to `metric`'s series: `before` is the builder's
        (folded, admitted, evicted) counts before the window (aggregate/bounds.py)."""
        folded, admitted, evicted = before
        self.folded_series[metric] += builder.folded - folded
        self.admitted_series[metric] += builder.admitted - admitted
        self.evicted_series[metric] += builder.bound.evicted - evicted
