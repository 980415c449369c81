"""The general-purpose streaming detector: auto-seasonal residuals, calibrated, multi-scale.

`AutoSeasonal` is the composition that scores best on the Numenta Anomaly Benchmark with one
configuration for every series (see benchmarks/nab.py), flattened into scalar
hyper-parameters so that a rule can name it (``detector: {type: auto_seasonal, hold: 50}``):

1. `SeasonalResidual` forecasts each point (seasonal-naive median over the last ``cycles``
   periods, the period found online by autocorrelation; a local median without one) and turns
   the error into a signed robust z. Its level follows the median error of the last
   ``level_window`` points, so a lasting shift is absorbed within a few points instead of
   alarming all day. A second member with a slow level (``slow_level_window`` points, about a
   day of NAB's 5-60 minute series), read only at ``slow_horizons``, keeps seeing an episode
   after the fast level has caught up. On NAB it catches no window the fast member misses; what
   it does is lift real, lasting episodes a little above one-point blips of the same size, so
   the best threshold sits higher (3.4 rather than 3.2) with fewer false alarms: +0.8 / +2.0 / -0.3
   on the corpus, +1.8 / +3.2 / +2.0 held out (benchmarks/nab.py ``--ablation``), for about
   10 us per point. On clean synthetic shifts and flattened days it changes nothing, so treat
   it as an empirical gain. ``slow_level_window=None`` drops it.
   A third member, `MedianShift` (``shift_window`` k = 144 points), compares the median of the
   last k raw values with the median of the k before: slides to a new level slow enough for
   every level correction to follow, and days of demand far under their usual shape, whose
   residuals drown in the series' routine heavy tails (NAB's machine-temperature drift, the
   NYC blizzard and Christmas week). +5.8 / +4.7 / +6.4 on the corpus, +5.9 / +4.6 / +6.5 held
   out, for about 10 us per point. k = 96, 128, 144, 192 give 67.5, 69.8, 72.8, 68.6 on the
   standard profile (66.5-71.8 held out, each above the 65.9 without it): the gain holds over
   the range, its size moves with which windows a shift of that length happens to straddle,
   so 144 is the corpus's best, not a principled value. ``shift_window=None`` drops it.
2. `CalibratedEnsemble` averages each member's z over each of ``horizons`` points (a spike, a
   shift over hours, a day out of pattern) and calibrates each average into a surprise, the
   ``-log10`` tail probability against its own history on this series (peaks over threshold);
   values beyond surprise ``clip`` enter that history winsorised, so past incidents do not
   hide new ones.
3. `Refractory` damps the score for ``hold`` points after it reaches ``level`` (unless it gets
   ``margin`` decades worse than the episode's peak), so an incident fires once rather than on
   every point until the baseline has adapted. ``level`` sits a little below the warning level
   4: alerts (and NAB's best thresholds, 3.2-3.6) are read from about there, and an episode
   whose scores hover between the refractory level and the alert level would otherwise alert
   on every point. The margin is 5 decades: within an episode the score only re-fires when it
   is 100 000 times rarer than the peak so far (in practice, a fresh spike near the surprise
   cap). Margins 2, 3, 4, 5-6, 7 give 66.3, 66.6, 66.9, 67.0, 64.7 on the standard profile
   (held out 65.2 .. 65.9 at 5-6); from 7 up a refire needs more than the surprise cap allows
   after most peaks, so a second spike in the same episode is never reported.

The score reads as "one in 10^score", z-like: normal points mostly below 3, anomalies 4+.
"""

from __future__ import annotations

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.ensemble import CalibratedEnsemble
from stream_guard.detect.median_shift import MedianShift
from stream_guard.detect.refractory import Refractory
from stream_guard.detect.seasonal_residual import SeasonalResidual

__all__ = ["AutoSeasonal"]


class AutoSeasonal(DetectorBase):
    """Calibrated multi-horizon surprise of auto-seasonal forecast residuals.

    >>> import math, random
    >>> rng = random.Random(42)
    >>> det = AutoSeasonal()
    >>> scores = []
    >>> for i in range(3000):  # hourly, daily cycle, one outage at i=2500
    ...     v = 100 + 30 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 3)
    ...     v = 20.0 if 2500 <= i < 2506 else v
    ...     x = {"t": 3600.0 * i, "value": v, "numerator": v, "denominator": 1.0}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> max(scores[1000:2500]) < 4 < scores[2500]
    True
    """

    def __init__(
        self,
        horizons: tuple[int, ...] = (1, 8, 48),
        level: float = 3.5,
        hold: int = 100,
        damping: float = 0.25,
        margin: float = 5.0,
        cycles: int = 3,
        level_window: int = 8,
        slow_level_window: int | None = 48,
        slow_horizons: tuple[int, ...] = (48,),
        shift_window: int | None = 144,
        scale_window: int = 1000,
        max_period: int = 1024,
        min_acf: float = 0.5,
        calibration_window: int = 2000,
        tail_fraction: float = 0.05,
        min_count: int = 100,
        clip: float | None = 3.0,
        trust_count: int | None = None,
    ) -> None:
        self.horizons = tuple(horizons)
        self.level = level
        self.hold = hold
        self.damping = damping
        self.margin = margin
        self.cycles = cycles
        self.level_window = level_window
        self.slow_level_window = slow_level_window
        self.slow_horizons = tuple(slow_horizons)
        self.shift_window = shift_window
        self.scale_window = scale_window
        self.max_period = max_period
        self.min_acf = min_acf
        self.calibration_window = calibration_window
        self.tail_fraction = tail_fraction
        self.min_count = min_count
        self.clip = clip
        self.trust_count = trust_count
        level_windows = [level_window] + ([slow_level_window] if slow_level_window else [])
        horizons_per_member = [self.horizons, self.slow_horizons][: len(level_windows)]
        residuals = [self._residual(window) for window in level_windows]
        self.forecaster = residuals[0]  # the fast one: its forecast is the expectation reported
        shift = [MedianShift(shift_window)] if shift_window else []
        members: list[SeasonalResidual | MedianShift] = [*residuals, *shift]
        # The shift is already a statistic of 2k points: no averaging over horizons on top.
        horizons_per_member += [(1,)] * len(shift)
        self.ensemble = CalibratedEnsemble(
            members,
            horizons=horizons_per_member,
            calibration_window=calibration_window,
            tail_fraction=tail_fraction,
            min_count=min_count,
            clip=clip,
            trust_count=trust_count,
        )
        self._detector = Refractory(
            self.ensemble, level=level, hold=hold, damping=damping, margin=margin
        )

    def _residual(self, level_window: int) -> SeasonalResidual:
        """One forecast-residual member (a subclass may floor its scale: tail_surprise.py)."""
        return SeasonalResidual(
            cycles=self.cycles,
            level_window=level_window,
            scale_window=self.scale_window,
            max_period=self.max_period,
            min_acf=self.min_acf,
        )

    @property
    def period(self) -> int | None:
        """The season (in points) detected so far, None if the series shows none."""
        return self.forecaster.period

    def calibrated_one(self, x: Features) -> float:
        """The calibrated score of ``x`` before the refractory period damps it."""
        return self.ensemble.score_one(x)

    def score_one(self, x: Features) -> float:
        return self._detector.score_one(x)

    def expect_one(self, x: Features) -> float | None:
        return self.forecaster.expect_one(x)

    def learn_one(self, x: Features) -> None:
        self._detector.learn_one(x)
