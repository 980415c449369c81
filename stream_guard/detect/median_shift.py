"""Median shift between two adjacent windows: a change-point statistic, as a signed z.

Forecast-residual members see a change of level only while their level correction has not
caught up with it: a few points for a step, and not at all for a slide to a new level slow
enough to be followed point by point (machine temperature drifting down over hours), or a day
of demand well below its usual shape (NYC taxis in a blizzard), whose residuals are no larger
than the series' routine heavy tails. Comparing the median of the last ``k`` points with the
median of the ``k`` before sees the whole displacement at once, whatever its speed, as long as
it happens within about ``k`` points. Medians rather than means, so that a lone spike (which
the residual members already report) moves neither window: a mean shift over the same windows
turns every spike into ``k`` points of shift and alarmed all over NAB's spiky series.

The difference is scaled by the robust spread (inter-quartile range) of its own history over
``scale_window`` points, so the z reads "how unusual a shift of this size is on this series";
the ensemble's `TailCalibrator` then turns it into a surprise like any other member.

The scale is never below the series' *resolution*, the smallest non-zero step seen between two
consecutive values (1 for integer speeds, a cent for prices; about 0 for continuous readings,
where it changes nothing). On quantised values the two medians tie most of the time, the
differences are mostly exactly 0 and their inter-quartile range is 0: without the floor a
median moving by one unit was a z of millions (integer speeds of sd 3 alarmed 4 times a file
on that alone). A shift smaller than what the series can even express is no evidence.
"""

from __future__ import annotations

import math

from stream_guard.detect.base import Features, ZScored
from stream_guard.detect.rolling import RollingQuantiles

__all__ = ["MedianShift"]

IQR_TO_SIGMA = 1.349
# Differences are not scored before this many of them are in (the spread is not known yet).
MIN_HISTORY = 100


class MedianShift(ZScored):
    """Signed robust z of (median of the last ``k`` values - median of the ``k`` before).

    >>> import random
    >>> rng = random.Random(5)
    >>> det = MedianShift(k=32)
    >>> zs = []
    >>> for i in range(1200):  # noise, then a slide of 8 sigmas over 100 points
    ...     v = rng.gauss(0, 1) - 8 * min(max(i - 1000, 0), 100) / 100
    ...     x = {"t": 60.0 * i, "value": v, "numerator": v, "denominator": 1.0}
    ...     zs.append(det.z_one(x))
    ...     det.learn_one(x)
    >>> max(map(abs, zs[400:1000])) < 5 < -min(zs[1000:])
    True
    """

    def __init__(self, k: int = 128, scale_window: int = 2000) -> None:
        self.k = k
        self.scale_window = scale_window
        self._recent = RollingQuantiles(k)  # the last k values
        self._older = RollingQuantiles(k)  # the k values before them
        self._diffs = RollingQuantiles(scale_window)
        self._resolution = math.inf  # smallest non-zero step between consecutive values
        self._previous: float | None = None
        # Robust spread of the differences: a function of the history only, so it is computed
        # once per learnt point rather than at every score, expect and learn call.
        self._scale: float | None = None

    def _diff(self, value: float) -> float | None:
        """The statistic once ``value`` is in the recent window (None until 2k values are in)."""
        if len(self._older) < self.k:
            return None
        return self._recent.quantile_after(value, 0.5) - self._older.quantile(0.5)

    def _spread(self) -> float:
        """Robust sigma of past differences (0: too few to score)."""
        if self._scale is None:
            d = self._diffs
            self._scale = 0.0
            if len(d) >= MIN_HISTORY:
                iqr = (d.quantile(0.75) - d.quantile(0.25)) / IQR_TO_SIGMA
                # A series that never moves would otherwise turn rounding errors into huge z's.
                floor = max(1e-9 * abs(self._older.quantile(0.5)), 1e-12)
                resolution = self._resolution if math.isfinite(self._resolution) else 0.0
                self._scale = max(iqr, resolution, floor)
        return self._scale

    def expect_one(self, x: Features) -> float | None:
        """The median of the older window: the level the recent one is compared with."""
        return self._older.quantile(0.5) if self._spread() > 0.0 else None

    def z_one(self, x: Features) -> float:
        diff, scale = self._diff(x["value"]), self._spread()
        return 0.0 if diff is None or scale == 0.0 else diff / scale

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore, giving a detector saved before the resolution floor none yet."""
        self.__dict__.update({"_resolution": math.inf, "_previous": None, **state})

    def learn_one(self, x: Features) -> None:
        value = x["value"]
        if not math.isfinite(value):
            return
        if self._previous is not None and value != self._previous:
            self._resolution = min(self._resolution, abs(value - self._previous))
        self._previous = value
        diff = self._diff(value)
        if diff is not None:
            self._diffs.update(diff)
            self._scale = None
        if len(self._recent) == self.k:  # its oldest value moves on to the older window
            self._older.update(self._recent.first())
        self._recent.update(value)
