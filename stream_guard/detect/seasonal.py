"""Seasonal robust baseline for business metrics with daily (and weekly) cycles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.stats import Recent, ShiftCounter, median, supported_z

__all__ = ["SeasonalBaseline"]

MIN_FACTOR = 0.01  # the least factor a phase of the day is given
MAX_REBASE = 100.0  # the most a rebase moves the level, either way (x100 or /100)
_MEDIAN_CHI2_1 = 0.4549  # median of a chi-square with one degree of freedom (its mean is 1)
_DAY_S = 86400.0


class SeasonalBaseline(DetectorBase):
    """expected = level × profile[phase of the day]; noise grows with the expected value.

    A quiet night is no GMV crash: each phase of the `period` (one bucket per `window`) has its
    own multiplicative factor, so 04:00 is compared with what 04:00 usually is. The level follows
    slow drifts (weekends, growth) with an EWMA. Noise is modelled like a compound Poisson sum:
    ``var = dispersion × expected + (model_error × expected)²``, with `dispersion` learned online,
    so small slices and night troughs get wider bands than the busy global series.

    The profile of a phase is an estimate too: right after the first period it rests on one
    observation, so its estimation noise is added to the band (it shrinks as days accumulate).
    This keeps day two, when every phase has been seen once, from paging on ordinary noise.

    Scores scan `horizons`: the deviation summed over the last h windows (h in `horizons`) in
    the direction of the current window, against the summed noise; the score is the largest z.
    The model error is counted as fully correlated over a horizon (a level that is 4% off is 4%
    off in every window), so slow drifts do not add up to an alarm while a sustained drop does.

    Learning is robust: while the scan is beyond `hold`, the baseline holds (an incident does
    not drag it along). A shift that lasts `absorb_after` windows is taken as the new normal:
    the level is rebased on the recent windows (after an alert, not all day long). One extreme
    window (a 1e12 order) costs one episode, not a day of them: in the first period it is
    winsorised before the baseline is built from it, later it counts in the horizon scans only
    as far as the window after it supports (`stats.supported_z`).

    Weekly shape (`weekly`): a Saturday is no incident either. On top of the daily profile,
    each day of the week (UTC) gets a factor: the day's level (the median over its windows of
    value / daily profile) against the median day level of the last seven days. All of the
    day's windows count (a weekend's first hours are beyond `hold`, and they are what is to be
    learned); the medians keep an incident of a few hours, or a day, out. The factor is set
    when the day is over and used from the same day a week later (1 before: the first week is
    judged on the daily profile and the level alone). One day is a noisy estimate, so the
    factor is shrunk towards 1 by its own evidence (positive-part James-Stein: times
    ``1 - se² / (r - 1)²`` for a day ratio ``r`` of standard error ``se``): a weekend's -30%
    is kept whole, the noise of a small slice mostly not. Later weeks move it halfway.

    Parameters: `window` and `period` in seconds; `alpha` the level's EWMA weight per window;
    `season_alpha` the profile's weight per period; `model_error` the relative error floor;
    `warmup_periods` full periods to learn before scoring; `clip` the band, in z, of robust
    learning; `absorb_after` windows; `min_count`: a phase that usually sees fewer events
    (``x["denominator"]``) than this is too small to page anyone and scores 0; `horizons` in
    windows, 1 being the window alone.

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
        horizons: tuple[int, ...] = (1,),
        hold: float = 3.0,
        weekly: bool = False,
    ) -> None:
        if not horizons or min(horizons) < 1:
            raise ValueError(f"horizons must be windows >= 1, got {horizons!r}")
        self.window = window
        self.period = period
        self.alpha = alpha
        self.season_alpha = season_alpha
        self.model_error = model_error
        self.warmup_periods = warmup_periods
        self.clip = clip
        self.absorb_after = absorb_after
        self.min_count = min_count
        self.horizons = tuple(horizons)
        self.hold = hold
        self.weekly = weekly
        self.n_buckets = max(1, round(period / window))
        self._profile: list[float | None] = [None] * self.n_buckets
        # Variance of each phase's profile estimate, relative to one window's noise: 1 after one
        # observation, then that of an EWMA of weight `season_alpha`.
        self._uncertainty = [1.0] * self.n_buckets
        self._level: float | None = None
        self._dispersion = 0.0
        self._seen = 0
        self._first_t: float | None = None
        self._shift = ShiftCounter(absorb_after)
        # (value, expected, noise variance, usual events) of the windows scored lately
        self._recent = Recent(max(self.horizons))
        # (z, expected, noise variance) of a window beyond `hold` awaiting the next window's
        # verdict: a lone outlier is learned as noise, the onset of a shift is not
        self._held: tuple[float, float, float] | None = None
        self._warm: dict[int, float] = {}
        self._counts = [0.0] * self.n_buckets  # usual events per phase (x["denominator"])
        self._week: dict[int, float] = {}  # day of the week -> factor (weekly)
        # the current day: its index and each window's (value / daily profile, relative std)
        self._day: tuple[int, list[tuple[float, float]]] | None = None
        self._day_levels: list[float] = []  # of the last seven days

    def __setstate__(self, state: dict[str, object]) -> None:
        """Detectors pickled before `weekly` existed load without a weekly shape."""
        state.setdefault("weekly", False)
        state.setdefault("_week", {})
        state.setdefault("_day", None)
        state.setdefault("_day_levels", [])
        self.__dict__.update(state)

    def _week_factor(self, t: float) -> float:
        return self._week.get(int(t // _DAY_S) % 7, 1.0) if self.weekly else 1.0

    def _bucket(self, t: float) -> int:
        return int((t % self.period) // self.window) % self.n_buckets

    def _ready(self, t: float) -> bool:
        return self._first_t is not None and t - self._first_t >= self.warmup_periods * self.period

    def expect_one(self, x: Features) -> float | None:
        if self._level is None or not self._ready(x["t"]):
            return None
        return self._level * self._factor(self._bucket(x["t"])) * self._week_factor(x["t"])

    def _smooth(
        self, values: Sequence[float | None], b: int, weights: tuple[float, float]
    ) -> float:
        """1-2-1 smoothing around phase `b` (`weights` = (side, centre), summing to 1 with the
        two sides); a phase not learned yet (None) counts as 0."""
        n = len(values)
        if n < 3:
            return values[b] or 0.0
        side, centre = weights
        return side * ((values[b - 1] or 0.0) + (values[(b + 1) % n] or 0.0)) + centre * (
            values[b] or 0.0)

    def _factor(self, b: int) -> float:
        """The phase's factor smoothed with its neighbours (1-2-1): one day of history per
        phase is noisy, and the cycle is smooth at the scale of a few windows."""
        # Floored: a phase under 1% of the mean is as good as empty, and dividing by a factor
        # near 0 (a first day of zeros) blew the level up to an overflow within a day.
        return max(self._smooth(self._profile, b, (0.25, 0.5)), MIN_FACTOR)

    def _noise_var(self, expected: float, b: int) -> float:
        """Variance of one window that is independent from window to window: the compound
        Poisson noise, widened by the profile's own estimation noise (weights 1-2-1 squared)."""
        profile_var = self._smooth(self._uncertainty, b, (1 / 16, 4 / 16))
        return self._dispersion * max(expected, 0.0) * (1.0 + profile_var)

    def _z(self, value: float, expected: float, noise_var: float) -> float:
        var = noise_var + (self.model_error * expected) ** 2
        return (value - expected) / math.sqrt(var) if var > 0 else 0.0

    def _scan(self, value: float, expected: float, b: int) -> float:
        """Signed z of the largest deviation over the horizons, on the current window's side;
        a horizon that usually sees fewer than `min_count` events is too small to judge."""
        side = 1 if value >= expected else -1
        current = (value, expected, self._noise_var(expected, b), self._counts[b])
        best = 0.0
        for h in self.horizons:
            obs, exp, noise, usual = self._recent.sums(h, current)
            if usual < self.min_count:
                continue
            z = self._z(obs, exp, noise)
            if side * z > abs(best):
                best = z
        return best

    def score_one(self, x: Features) -> float:
        expected = self.expect_one(x)
        if expected is None:
            return 0.0
        return abs(self._scan(x["value"], expected, self._bucket(x["t"])))

    def learn_one(self, x: Features) -> None:
        t, value = x["t"], x["value"]
        if self._first_t is None:
            self._first_t = t
        self._seen += 1
        b = self._bucket(t)
        if not self._ready(t) or self._level is None:
            self._learn_count(b, x)
            self._warm[b] = value  # the first period is learned as a whole, see _initialise
            if t - self._first_t >= self.warmup_periods * self.period - self.window:
                self._initialise()
            return
        week = self._week_factor(t)
        expected = self._level * self._factor(b) * week
        if self.weekly:
            self._learn_week(t, value, expected, b)
        scan = self._scan(value, expected, b)
        side = 1 if scan > self.hold else -1 if scan < -self.hold else 0
        if self._shift.update(side):
            self._learn_count(b, x)
            self._rebase(value, expected)
            return
        noise_var = self._noise_var(expected, b)
        z = self._z(value, expected, noise_var)  # this window alone
        self._settle_held(z)
        self._trim_last(z)
        self._recent.push((value, expected, noise_var, self._counts[b]))
        if side == 0:
            self._learn_count(b, x)
            self._learn_noise(z, expected, noise_var)
            self._learn_level(b, value, expected, noise_var, week)
        elif abs(self._shift.streak) == 1:  # the first window beyond `hold`: blip or onset?
            self._held = (z, expected, noise_var)

    def _settle_held(self, z: float) -> None:
        """Decide on the window held last time, now that the next one (`z`) is known.

        Beyond `hold` the baseline learns nothing: an incident's first windows, not alarming
        yet, would otherwise widen the band and pull the level (a drop to 20% for an hour was
        missed that way). But a lone outlier (one huge order in a small slice) is exactly what
        the band must learn, heavy tails included. Whether a held window was alone shows in the
        next one: if it deviates again the same way (beyond 0.5σ), it is an onset and forgotten;
        otherwise the held window is learned as noise."""
        if self._held is None:
            return
        held_z, expected, noise_var = self._held
        self._held = None
        if z * math.copysign(1.0, held_z) <= 0.5:
            self._learn_noise(held_z, expected, noise_var)

    def _trim_last(self, z: float) -> None:
        """The newest of the recent windows stays in the horizon scans only as far beyond its
        expectation as this window (`z`, alone) supports (`stats.supported_z`)."""
        if not self._recent.items:
            return
        value, expected, noise_var, _ = self._recent.items[-1]
        std = math.sqrt(noise_var + (self.model_error * expected) ** 2)
        last_z = (value - expected) / std if std > 0 else 0.0
        kept = supported_z(last_z, z, self.clip)
        if kept != last_z:
            self._recent.amend_last(expected + kept * std)

    def _learn_count(self, b: int, x: Features) -> None:
        """The usual number of events of phase `b` (``x["denominator"]``): the first period
        sets it, later ones follow with weight 0.3."""
        weight = 1.0 if self._seen <= self.n_buckets else 0.3
        self._counts[b] += (x.get("denominator", 0.0) - self._counts[b]) * weight

    def _learn_week(self, t: float, value: float, expected: float, b: int) -> None:
        """Record this window against the daily profile; a day's factor is set (or moved) once
        the day is over (see the class doc)."""
        day = int(t // _DAY_S)
        if self._day is not None and self._day[0] != day:
            self._commit_day()
        if self._day is None:
            self._day = (day, [])
        factor = self._factor(b)
        if factor > 0 and expected > 0:
            std = math.sqrt(self._noise_var(expected, b) + (self.model_error * expected) ** 2)
            self._day[1].append((value / factor, std / expected))

    def _commit_day(self) -> None:
        assert self._day is not None
        day, seen = self._day
        self._day = None
        if len(seen) < max(1, self.n_buckets // 2):  # half a day says little about a day
            return
        level = median([v for v, _ in seen])
        self._day_levels = [*self._day_levels[-6:], level]
        usual = median(self._day_levels)
        if usual <= 0:
            return
        ratio = level / usual
        # relative standard error of a median of the day's windows: 1.25 x that of a mean
        se = 1.25 * math.sqrt(sum(v * v for _, v in seen)) / len(seen)
        excess = ratio - 1.0
        shrink = max(0.0, 1.0 - se * se / (excess * excess)) if excess else 0.0
        target = 1.0 + shrink * excess
        old = self._week.get(day % 7)
        self._week[day % 7] = target if old is None else old + 0.5 * (target - old)

    def _learn_level(
        self, b: int, value: float, expected: float, noise_var: float, week: float = 1.0
    ) -> None:
        if not self._level or self._level <= 0:
            return
        std = math.sqrt(noise_var + (self.model_error * expected) ** 2)
        z = (value - expected) / std if std > 0 else 0.0
        clipped = (expected + max(-self.clip, min(self.clip, z)) * std) / week
        factor = self._factor(b)
        self._level += self.alpha * (clipped / factor - self._level)
        own = self._profile[b] or factor
        self._profile[b] = own + self.season_alpha * (clipped / self._level - own)
        keep = (1 - self.season_alpha) ** 2
        self._uncertainty[b] = keep * self._uncertainty[b] + self.season_alpha**2

    def _learn_noise(self, z: float, expected: float, noise_var: float) -> None:
        # Heavy tails (one big order in a small slice) must widen the band: residuals are
        # learned up to 2 x clip, beyond the robust band used for the level.
        var = noise_var + (self.model_error * expected) ** 2
        resid2 = min(z * z, (2 * self.clip) ** 2) * var
        noise = resid2 - (self.model_error * expected) ** 2
        self._dispersion += 0.02 * (max(noise, 0.0) / max(expected, 1e-9) - self._dispersion)

    def _initialise(self) -> None:
        """After the first period: level = its mean, profile = each phase over the mean (a
        phase never seen gets 1), dispersion from the phase-to-phase roughness: half a squared
        difference of neighbours estimates the variance, robustly through its median, which for
        a chi-square with one degree of freedom is 0.455 of the mean.

        The first period has no baseline to be held against, so each of its windows is first
        winsorised (`_winsorised`): one extreme window would otherwise be the level, and so
        scale every phase's expectation, for days."""
        values = list(self._warm.values())
        # d * d, not d ** 2: an absurd window gives inf (outvoted by the median), not an error
        diffs = [(b - a) * (b - a) / 2 for a, b in pairwise(values)]
        noise = sorted(diffs)[len(diffs) // 2] / _MEDIAN_CHI2_1 if diffs else 0.0
        values = self._winsorised(values, noise)
        self._level = max(sum(values) / len(values), 1e-9)
        by_phase = dict(zip(self._warm, values, strict=True))
        self._profile = [by_phase.get(b, self._level) / self._level
                         for b in range(self.n_buckets)]
        if diffs:
            self._dispersion = noise / self._level
        self._warm = {}

    def _winsorised(self, values: list[float], noise: float) -> list[float]:
        """`values` (in time order) each clipped to `clip` bands around the median of its
        neighbours, two windows either side: the cycle moves little over five windows, one
        outlier moves no median, and the band (window noise `noise` plus the model error) is
        the one robust learning uses later."""
        out = []
        for i, value in enumerate(values):
            local = median(values[max(0, i - 2): i + 3])
            band = self.clip * math.sqrt(noise + (self.model_error * local) ** 2)
            out.append(min(max(value, local - band), local + band))
        return out

    def _rebase(self, value: float, expected: float) -> None:
        """A shift outlasted `absorb_after` windows: move the level to the recent windows'
        ratio of actual to expected, and forget the evidence already alerted on."""
        obs, exp, *_ = self._recent.sums(max(self.horizons), (value, expected, 0.0, 0.0))
        if self._level and exp > 0:
            # Bounded both ways: a level rebased on a near-zero expectation (a series of
            # zeros and spikes) once multiplied by 1e10 at each rebase until it overflowed.
            self._level *= min(max(obs / exp, 1 / MAX_REBASE), MAX_REBASE)
        self._recent.clear()
        self._held = None  # the shift it may have begun is now the baseline
