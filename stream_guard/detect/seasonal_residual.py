"""Seasonal-naive forecast residuals, with the season found online by autocorrelation.

The forecast of a point is the median of the values one, two, ... ``cycles`` periods earlier
(a robust seasonal-naive forecast), shifted by the median of the last ``level_window`` forecast
errors (the *level*) so that a level change of the whole series is followed within a few
points. The history keeps each value less the level in force when it was learnt, so the
seasonal part never sees a level shift: otherwise, one and two periods after the shift, the
seasonal median would flip to the new level while the level still corrected for the old one,
and the shift would alarm again. Without a detected period the forecast is the median of the
last ``level_window`` values. The residual is
scaled by a robust spread (inter-quartile range) of the last ``scale_window`` residuals, giving a
signed robust z: the detector's score is its absolute value.

The period is searched by `detect_period` once ``warmup`` points are buffered, then after every
eighth of the history seen (at most every ``redetect_every`` points), so a daily cycle is found
after two days and a weekly one after two weeks; ``max_period`` bounds the search. This is the
baseline a business metric wants (hourly GMV has daily and weekly cycles) and, without a
period, a plain robust local-level model. ``level_correction=False`` keeps the pure seasonal
forecast (no shift by recent errors), for metrics whose level must not be learnt away.
"""

from __future__ import annotations

import math
from collections import deque

from stream_guard.detect.base import Features, ZScored
from stream_guard.detect.period import detect_period
from stream_guard.detect.rolling import RollingQuantiles
from stream_guard.detect.stats import median

__all__ = ["SeasonalResidual"]

# IQR / 1.349 is the standard deviation of a normal distribution with that IQR.
IQR_TO_SIGMA = 1.349
# The residual scale is floored at this share of the values' own spread, so that a noiseless
# series (perfectly repeating) does not turn rounding errors into huge z-scores.
RELATIVE_SCALE_FLOOR = 0.01
# Fewest points between two period searches.
MIN_REDETECT_GAP = 32


class SeasonalResidual(ZScored):
    """Robust z-score of the seasonal-naive forecast error; period detected online.

    >>> import math, random
    >>> rng = random.Random(1)
    >>> det = SeasonalResidual(warmup=96, max_period=48)
    >>> for i in range(400):
    ...     x = {"t": 3600.0 * i, "value": 10 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 1)}
    ...     x["numerator"], x["denominator"] = x["value"], 1.0
    ...     _ = det.score_one(x)
    ...     det.learn_one(x)
    >>> det.period
    24
    >>> spike = {"t": 3600.0 * 400, "value": 8.0, "numerator": 8.0, "denominator": 1.0}
    >>> det.score_one(spike) > 5  # the cycle is at 0 here, 8 is far off
    True
    """

    def __init__(
        self,
        cycles: int = 3,
        level_window: int = 8,
        scale_window: int = 1000,
        warmup: int = 128,
        redetect_every: int = 512,
        max_period: int = 1024,
        min_acf: float = 0.5,
        level_correction: bool = True,
    ) -> None:
        self.cycles = cycles
        self.level_window = level_window
        self.scale_window = scale_window
        self.warmup = warmup
        self.redetect_every = redetect_every
        self.max_period = max_period
        self.min_acf = min_acf
        self.level_correction = level_correction
        self.period: int | None = None
        size = max(cycles * max_period, 2 * max_period, warmup)
        # Each value less the level of its time, as many as the seasonal median reads (none
        # without a period): sized to the period found, not to the longest one searched.
        self._values: deque[float] = deque(maxlen=0)
        self._raw: deque[float] = deque(maxlen=size)  # as observed: what the period search reads
        self._errors = RollingQuantiles(level_window)
        self._residuals = RollingQuantiles(scale_window)
        self._spread = RollingQuantiles(scale_window)
        self._recent = RollingQuantiles(level_window)  # last values: the forecast without a period
        self._n = 0
        self._next_check = warmup
        # (forecast, scale) of the next point: neither depends on the point itself, and score,
        # expect and learn each need them, so they are computed once per learnt point.
        self._next: tuple[float | None, float] | None = None

    def _seasonal(self) -> float | None:
        """Forecast before the level correction: seasonal median, or None without a period."""
        p, v = self.period, self._values
        if p is None or len(v) < p:
            return None
        return median([v[-k * p] for k in range(1, self.cycles + 1) if k * p <= len(v)])

    def _forecast(self) -> tuple[float | None, float]:
        """Forecast of the next point (None while warming up) and the residual scale."""
        if self._next is None:
            forecast, scale = None, 0.0  # scale 0: too few residuals yet to score
            if self._n >= self.warmup:
                seasonal = self._seasonal()
                if seasonal is None:
                    forecast = self._recent.quantile(0.5)
                else:
                    forecast = seasonal + self._level()
                if len(self._residuals) >= self.level_window:
                    scale = self._scale()
            self._next = (forecast, scale)
        return self._next

    def expect_one(self, x: Features) -> float | None:
        return self._forecast()[0]

    def _level(self) -> float:
        """The current level correction (0 without a period or with the correction off)."""
        if self.period is None or not self._errors or not self.level_correction:
            return 0.0
        return self._errors.quantile(0.5)

    def z_one(self, x: Features) -> float:
        """Signed robust z of ``x`` against the forecast (0 while warming up)."""
        expected, scale = self._forecast()
        if expected is None or scale == 0.0:
            return 0.0
        return (x["value"] - expected) / scale

    def _scale(self) -> float:
        r, s = self._residuals, self._spread
        floor = RELATIVE_SCALE_FLOOR * (s.quantile(0.75) - s.quantile(0.25)) / IQR_TO_SIGMA
        spread = (r.quantile(0.75) - r.quantile(0.25)) / IQR_TO_SIGMA
        return max(spread, floor, 1e-9 * abs(s.quantile(0.5)), 1e-12)

    def learn_one(self, x: Features) -> None:
        value = x["value"]
        if not math.isfinite(value):
            return
        expected = self._forecast()[0]
        if expected is not None:
            self._residuals.update(value - expected)
        seasonal = self._seasonal()
        if seasonal is not None:
            self._errors.update(value - seasonal)
        self._spread.update(value)
        self._recent.update(value)
        self._values.append(value - self._level())
        self._raw.append(value)
        self._n += 1
        self._next = None
        if self._n >= self._next_check:
            self._redetect()
            # Look again after 1/8 of the history so far: often while the first cycles come in,
            # then every `redetect_every` points, which keeps the amortised cost small.
            self._next_check += min(max(self._n // 8, MIN_REDETECT_GAP), self.redetect_every)

    def _redetect(self) -> None:
        period = detect_period(
            self._raw,
            min_lag=4,
            max_lag=self.max_period,
            min_acf=self.min_acf,
            current=self.period,
        )
        if period != self.period:  # levels will be relative to another season: start afresh
            self._values = deque(self._raw, maxlen=self.cycles * period if period else 0)
            self.period = period
            self._errors.clear()
