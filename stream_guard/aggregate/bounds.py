"""Per-slice state bounds: how many series one metric keeps, and which give way to new ones.

A metric's owner keeps, per series (slice with a series of its own, aggregate/points.py), a
detector, its mix baseline and possibly its recent history; all of it is saved in the metric's
model snapshot (runtime/snapshot.py), one table value that must stay well under the producer's
8 MB and that a restarted worker reads back before it resumes. `max_series` (a count, the rule's
memory guard) does not bound those bytes: a seasonal detector on 5-minute windows weighs ~14 kB
once warm, a rate test 0.6 kB. So:

- **cap**: a metric keeps at most `STATE_BYTES` / (one warm detector's bytes) series, and never
  more than its `max_series`. The warm size is measured, not guessed: a detector of the rule's
  type, parameters and window fed `WARM_POINTS` seeded points, pickled (`warm_size`). It is
  only measured once a metric has `CHECK_FROM` series, so small rules (the shipped ones have
  about 50) never pay for it and keep exactly the behaviour they had.
- **eviction**: at the cap, an established series silent for `IDLE_MS` or more gives its place
  to a new slice with volume, the longest silent first (its detector and mix baseline go with
  it: `PointBuilder.forgotten`). A series that had events in the last `IDLE_MS` is never pushed
  out, so a flood of new values cannot evict the slices that matter.

Both are deterministic functions of the windows seen, so replay and a restarted or rebalanced
owner keep and evict the same series. What was evicted is counted
(`stream_guard_series_evicted_total`), as is what was admitted (`..._admitted_total`).

>>> from stream_guard.config.rules import MetricRule
>>> rule = MetricRule.model_validate({"metric": "m", "value": "count", "window": "5m",
...     "source": {"topic": "orders", "aggregate": "count"}, "detector": {"type": "threshold",
...     "upper": 9}, "alert": {"route": "r"}, "max_series": 4})
>>> bound = SeriesBound(rule)
>>> seen = {(): 0, (("s", "a"),): 0, (("s", "b"),): IDLE_MS + 1, (("s", "c"),): 2 * IDLE_MS}
>>> bound.make_room(seen, wanted=2, now_ms=2 * IDLE_MS)   # 'a' silent long enough, 'b' not
[(('s', 'a'),)]
>>> bound.room(len(seen)), bound.evicted
(1, 1)
"""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass

import orjson

from stream_guard.config.rules import MetricRule
from stream_guard.detect.registry import build_detector
from stream_guard.types import SliceKey

__all__ = ["CHECK_FROM", "IDLE_MS", "STATE_BYTES", "WARM_POINTS", "SeriesBound", "idle_slices",
           "series_cap", "warm_size"]

STATE_BYTES = 2_000_000
"""A metric's series' detectors weigh at most ~2 MB pickled: a quarter of the producer's 8 MB
message limit (the snapshot also holds the shared state, and detectors may outgrow their warm
size a little), and 100 metrics at the cap restore ~200 MB, seconds of a restart."""
CHECK_FROM = 100
"""Series a metric may keep before its cap is measured (the cap is never lower)."""
WARM_POINTS = 2_500
"""Points fed to a detector before it is weighed: past the longest history a shipped detector
keeps (auto's tail calibration holds 2,000 scores; a daily season of 5-minute windows, 288)."""
IDLE_MS = 6 * 3_600_000
"""A series silent for 6 hours may give way at the cap: long enough that a slice gone silent
(a seller's outage) has been scored silent for hours, and alerted on, before it goes."""


def idle_slices(last_seen: dict[SliceKey, int], now_ms: int, count: int,
                idle_ms: int = IDLE_MS) -> list[SliceKey]:
    """Up to `count` slices of `last_seen` (slice -> start of its last window with events)
    silent since `now_ms - idle_ms` or before, the longest silent first; never the platform.

    >>> idle_slices({(): 0, (("r", "EU"),): 5, (("r", "NA"),): 1}, 10, 5, idle_ms=4)
    [(('r', 'NA'),), (('r', 'EU'),)]
    """
    if count <= 0:
        return []
    horizon = now_ms - idle_ms
    silent = [(seen, key) for key, seen in last_seen.items() if key and seen <= horizon]
    silent.sort()
    return [key for _, key in silent[:count]]


@functools.lru_cache(maxsize=256)
def _warm_size(kind: str, params: bytes, window_s: float, ratio: bool) -> int:
    detector = build_detector(kind, orjson.loads(params), window_s)
    for i in range(WARM_POINTS):  # seeded-free: a fixed, plausible series with a daily cycle
        den = 200.0 * (1.5 + math.sin(2 * math.pi * i * window_s / 86_400)) + (i * 7919) % 23
        num = den * 0.05 + (i * 104_729) % 5
        x = {"t": i * window_s, "value": num / den if ratio else num * 10.0,
             "numerator": num, "denominator": den}
        detector.score_one(x)
        detector.expect_one(x)
        detector.learn_one(x)
    return len(pickle.dumps(detector, pickle.HIGHEST_PROTOCOL))


def warm_size(rule: MetricRule) -> int:
    """Bytes of one of `rule`'s detectors, pickled, once warm (cached per detector shape)."""
    params = orjson.dumps(rule.detector.params, option=orjson.OPT_SORT_KEYS)
    return _warm_size(rule.detector.type, params, rule.window.total_seconds(),
                      rule.value in ("ratio", "mean"))


def series_cap(rule: MetricRule, budget: int = STATE_BYTES) -> int:
    """The series `rule` may keep: what `budget` bytes of warm detectors hold, at least
    `CHECK_FROM`, at most the rule's `max_series`."""
    fits = budget // max(1, warm_size(rule))
    return min(rule.max_series, max(CHECK_FROM, fits))


@dataclass
class SeriesBound:
    """One metric's cap on series (measured when first needed) and its eviction count."""

    rule: MetricRule
    cap: int | None = None
    evicted: int = 0

    def limit(self, wanted_total: int) -> int:
        """The series the metric may keep, given it would have `wanted_total` with every
        candidate admitted (the cap is measured only past `CHECK_FROM`)."""
        if self.cap is None and wanted_total <= min(CHECK_FROM, self.rule.max_series):
            return self.rule.max_series
        if self.cap is None:
            self.cap = series_cap(self.rule)
        return self.cap

    def room(self, known: int) -> int:
        """How many new series fit beside `known` ones."""
        return max(0, self.limit(known) - known)

    def make_room(self, last_seen: dict[SliceKey, int], wanted: int,
                  now_ms: int) -> list[SliceKey]:
        """Evicts (removes from `last_seen`, and returns) the long-silent series that must go
        for `wanted` new ones to fit, or as many as are silent long enough."""
        over = len(last_seen) + wanted - self.limit(len(last_seen) + wanted)
        gone = idle_slices(last_seen, now_ms, over)
        for key in gone:
            del last_seen[key]
        self.evicted += len(gone)
        return gone
