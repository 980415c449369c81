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
    learning; `absorb_after` windows; `min_count`: a phase that usually sees fewer events
    (``x["denominator"]``) than this is too small to page anyone and scores 0.

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
        absorb_after: int = 24,
        min_count: float = 0.0,
    ) -> None:
        self.window = window
        self.period = period
        self.alpha = alpha
        self.season_alpha = season_alpha
        self.model_error = model_error
        self.warmup_periods = warmup_periods
        self.clip = clip
        self.absorb_after = absorb_after
        self.min_count = min_count
        self.n_buckets = max(1, round(period / window))
        self._profile: list[float | None] = [None] * self.n_buckets
        self._level: float | None = None
        self._dispersion = 0.0
        self._seen = 0
        self._first_t: float | None = None
        self._streak = 0  # consecutive points outside the band, signed by direction
        self._warm: dict[int, float] = {}
        self._counts = [0.0] * self.n_buckets  # usual events per phase (x["denominator"])

    def _bucket(self, t: float) -> int:
        return int((t % self.period) // self.window) % self.n_buckets

    def _ready(self, t: float) -> bool:
        return self._first_t is not None and t - self._first_t >= self.warmup_periods * self.period

    def expect_one(self, x: Features) -> float | None:
        if self._level is None or not self._ready(x["t"]):
            return None
        return self._level * self._factor(self._bucket(x["t"]))

    def _factor(self, b: int) -> float:
        """The phase's factor smoothed with its neighbours (1-2-1): one day of history per
        phase is noisy, and the cycle is smooth at the scale of a few windows."""
        n, p = self.n_buckets, self._profile
        if n < 3:
            return p[b] or 1e-9
        return ((p[b - 1] or 0.0) + 2 * (p[b] or 0.0) + (p[(b + 1) % n] or 0.0)) / 4 or 1e-9

    def _std(self, expected: float) -> float:
        var = self._dispersion * max(expected, 0.0) + (self.model_error * expected) ** 2
        return math.sqrt(var) if var > 0 else 1e-9

    def score_one(self, x: Features) -> float:
        expected = self.expect_one(x)
        if expected is None or self._counts[self._bucket(x["t"])] < self.min_count:
            return 0.0
        return abs(x["value"] - expected) / self._std(expected)

    def learn_one(self, x: Features) -> None:
        t, value = x["t"], x["value"]
        if self._first_t is None:
            self._first_t = t
        self._seen += 1
        b = self._bucket(t)
        count = x.get("denominator", 0.0)
        weight = 1.0 if self._seen <= self.n_buckets else 0.3
        self._counts[b] += (count - self._counts[b]) * weight
        if not self._ready(t) or self._level is None:
            self._warm[b] = value  # the first period is learned as a whole, see _initialise
            if t - self._first_t >= self.warmup_periods * self.period - self.window:
                self._initialise()
            return
        factor = self._factor(b)
        expected = self._level * factor
        std = self._std(expected)
        z = (value - expected) / std
        self._track_shift(z, value, expected)
        clipped = expected + max(-self.clip, min(self.clip, z)) * std
        if self._level > 0:
            self._level += self.alpha * (clipped / factor - self._level)
            own = self._profile[b] or factor
            self._profile[b] = own + self.season_alpha * (clipped / self._level - own)
        # Heavy tails (one big order in a small slice) must widen the band: residuals are
        # learned up to 2 x clip, beyond the robust band used for the level.
        resid2 = min(z * z, (2 * self.clip) ** 2) * std * std
        noise = resid2 - (self.model_error * expected) ** 2
        self._dispersion += 0.02 * (max(noise, 0.0) / max(expected, 1e-9) - self._dispersion)

    def _initialise(self) -> None:
        """After the first period: level = its mean, profile = each phase over the mean (a
        phase never seen gets 1), dispersion from the phase-to-phase roughness."""
        values = list(self._warm.values())
        self._level = max(sum(values) / len(values), 1e-9)
        self._profile = [self._warm.get(b, self._level) / self._level
                         for b in range(self.n_buckets)]
        diffs = [(values[i] - values[i - 1]) ** 2 / 2 for i in range(1, len(values))]
        if diffs:
            self._dispersion = sorted(diffs)[len(diffs) // 2] / self._level
        self._warm = {}

    def _track_shift(self, z: float, value: float, expected: float) -> None:
        """After `absorb_after` windows beyond the band on one side, rebase the level there."""
        side = 1 if z > self.clip else -1 if z < -self.clip else 0
        self._streak = self._streak + side if side and side * self._streak >= 0 else side
        if abs(self._streak) >= self.absorb_after and self._level and expected > 0:
            self._level *= max(value, 0.0) / expected
            self._streak = 0
