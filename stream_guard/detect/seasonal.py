"""Seasonal robust baseline for business metrics with daily (and weekly) cycles."""

from __future__ import annotations

import math

from stream_guard.detect.base import DetectorBase, Features

__all__ = ["SeasonalBaseline"]


class SeasonalBaseline(DetectorBase):
    """expected = level × profile[phase of the day]; noise grows with the expected value.

    A quiet night is no GMV crash: each phase of the `period` (one bucket per `window`) has its
    own multiplicative factor, so 04:00 is compared with what 04:00 usually is. The level follows
    slow drifts (weekends, growth) with an EWMA. Noise is modelled like a compound Poisson sum:
    ``var = dispersion × expected + (model_error × expected)²``, with `dispersion` learned online,
    so small slices and night troughs get wider bands than the busy global series.

    Learning is robust: a point far from the band is learned clipped to the band, so an incident
    does not drag the baseline with it. A level shift that lasts `absorb_after` windows is taken as
    the new normal (after an alert, not all day long).

    Parameters: `window` and `period` in seconds; `alpha` the level's EWMA weight per window;
    `season_alpha` the profile's weight per period; `model_error` the relative error floor;
    `warmup_periods` full periods to learn before scoring; `clip` the band, in z, of robust
    learning; `absorb_after` windows.

    >>> import math
    >>> det = SeasonalBaseline(window=3600, period=86400)
    >>> def x(h, v): return {"t": h * 3600.0, "value": v, "numerator": v, "denominator": 1.0}
    >>> for h in range(24 * 3):  # three days of a clean daily cycle
    ...     v = 100 + 60 * math.sin(2 * math.pi * h / 24)
    ...     _ = det.score_one(x(h, v)); det.learn_one(x(h, v))
    >>> night = 100 + 60 * math.sin(2 * math.pi * 18 / 24)  # the trough, at 18h here
    >>> det.score_one(x(72 + 18, night)) < 2
    True
    >>> det.score_one(x(72 + 12, 30.0)) > 4  # a crash at an hour that usually sees ~100
    True
    """

    def __init__(
        self,
        window: float = 3600.0,
        period: float = 86400.0,
        alpha: float = 0.05,
        season_alpha: float = 0.3,
        model_error: float = 0.04,
        warmup_periods: int = 1,
        clip: float = 3.0,
        absorb_after: int = 8,
    ) -> None:
        self.window = window
        self.period = period
        self.alpha = alpha
        self.season_alpha = season_alpha
        self.model_error = model_error
        self.warmup_periods = warmup_periods
        self.clip = clip
        self.absorb_after = absorb_after
        self.n_buckets = max(1, round(period / window))
        self._profile: list[float | None] = [None] * self.n_buckets
        self._level: float | None = None
        self._dispersion = 0.0
        self._seen = 0
        self._first_t: float | None = None
        self._streak = 0  # consecutive points outside the band, signed by direction

    def _bucket(self, t: float) -> int:
        return int((t % self.period) // self.window) % self.n_buckets

    def _ready(self, t: float) -> bool:
        return self._first_t is not None and t - self._first_t >= self.warmup_periods * self.period

    def expect_one(self, x: Features) -> float | None:
        factor = self._profile[self._bucket(x["t"])]
        if self._level is None or factor is None or not self._ready(x["t"]):
            return None
        return self._level * factor

    def _std(self, expected: float) -> float:
        var = self._dispersion * max(expected, 0.0) + (self.model_error * expected) ** 2
        return math.sqrt(var) if var > 0 else 1e-9

    def score_one(self, x: Features) -> float:
        expected = self.expect_one(x)
        if expected is None:
            return 0.0
        return abs(x["value"] - expected) / self._std(expected)

    def learn_one(self, x: Features) -> None:
        t, value = x["t"], x["value"]
        if self._first_t is None:
            self._first_t = t
        self._seen += 1
        b = self._bucket(t)
        factor = self._profile[b]
        if self._level is None:
            self._level = max(value, 1e-9)
        if factor is None:  # first visit of this phase: the ratio to the running level
            self._profile[b] = value / self._level if self._level > 0 else 1.0
            self._level += self.alpha * (value - self._level)
            return
        expected = self._level * factor
        std = self._std(expected)
        z = (value - expected) / std
        self._track_shift(z, value, expected)
        clipped = expected + max(-self.clip, min(self.clip, z)) * std
        if self._level > 0 and factor > 0:
            self._level += self.alpha * (clipped / factor - self._level)
            self._profile[b] = factor + self.season_alpha * (clipped / self._level - factor)
        resid2 = min(z * z, self.clip**2) * std * std
        noise = resid2 - (self.model_error * expected) ** 2
        self._dispersion += 0.02 * (max(noise, 0.0) / max(expected, 1e-9) - self._dispersion)

    def _track_shift(self, z: float, value: float, expected: float) -> None:
        """After `absorb_after` windows beyond the band on one side, rebase the level there."""
        side = 1 if z > self.clip else -1 if z < -self.clip else 0
        self._streak = self._streak + side if side and side * self._streak >= 0 else side
        if abs(self._streak) >= self.absorb_after and self._level and expected > 0:
            self._level *= max(value, 0.0) / expected
            self._streak = 0
