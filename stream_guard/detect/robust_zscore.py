"""Robust z-score against a long sliding window: how far a point is from the recent normal.

The baseline is the median of the last ``size`` values and the spread their inter-quartile
range (as a normal-equivalent standard deviation), both exact and insensitive to the outliers
being detected. Where a forecast-residual detector (`SeasonalResidual`) sees surprises relative
to the last few points, this one sees *excursions*: a slow drift into a failure state whose
every step looks ordinary but whose level is far from anything seen over the window.

(The window length is ``size``, in points: ``window`` is the name rules reserve for the
aggregation window in seconds.)
"""

from __future__ import annotations

import math

from stream_guard.detect.base import Features, ZScored
from stream_guard.detect.rolling import RollingQuantiles

__all__ = ["RobustZScore"]

# IQR / 1.349 is the standard deviation of a normal distribution with that IQR.
IQR_TO_SIGMA = 1.349


class RobustZScore(ZScored):
    """``|x - median| / (IQR / 1.349)`` over the last ``size`` values.

    >>> import random
    >>> rng = random.Random(0)
    >>> det = RobustZScore(size=200, warmup=50)
    >>> for _ in range(300):
    ...     v = rng.gauss(10, 2)
    ...     det.learn_one({"t": 0.0, "value": v, "numerator": v, "denominator": 1.0})
    >>> x = {"t": 0.0, "value": 30.0, "numerator": 30.0, "denominator": 1.0}
    >>> det.score_one(x) > 7, round(det.expect_one(x))
    (True, 10)
    """

    def __init__(self, size: int = 2000, warmup: int = 100) -> None:
        self.size = size
        self.warmup = warmup
        self._values = RollingQuantiles(size)

    def expect_one(self, x: Features) -> float | None:
        if len(self._values) < self.warmup:
            return None
        return self._values.quantile(0.5)

    def z_one(self, x: Features) -> float:
        """Signed robust z of ``x`` (0 while warming up)."""
        median = self.expect_one(x)
        if median is None:
            return 0.0
        v = self._values
        sigma = (v.quantile(0.75) - v.quantile(0.25)) / IQR_TO_SIGMA
        # A window of identical values has no spread: fall back to a tiny relative scale.
        sigma = max(sigma, 1e-6 * abs(median), 1e-12)
        return (x["value"] - median) / sigma

    def learn_one(self, x: Features) -> None:
        if math.isfinite(x["value"]):
            self._values.update(x["value"])
