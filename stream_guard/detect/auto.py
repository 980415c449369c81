"""`auto`: the detector of a rule that names none, chosen and calibrated from the metric itself.

A rule says ``detector: {type: auto}`` (or nothing: it is the default) and at most one knob,
``sensitivity: low | medium | high``. Everything else is read from the series and the window:

- **The model, from the value type.** Sums and counts (``value == numerator``: GMV, orders)
  get the seasonal baseline with daily and weekly profiles (`SeasonalBaseline`, weekly on).
  Ratios whose numerator counts findings (complaints per order) get the Poisson rate test with
  its denominator guard (`RateTest`). A ratio of amounts or a mean (a numerator that is not a
  count) gets the seasonal baseline on its value. The type is read from the first points
  (``value`` equals ``numerator`` for sums and counts; integral numerators for counted
  findings); those points are kept and replayed into the chosen model, so nothing is lost.
  A plain series -- one event in each window, ``denominator`` 1 for `PLAIN_AFTER` windows in
  a row: a gauge read once per window, or a series fed from outside such as NAB's -- has no
  counts to model; it gets `TailSurprise`, which finds its own season and calibrates its
  own tail (without it, `auto` read such a series as a sum of too few events and never
  scored: 0 on NAB).
- **The horizons, from the window.** Incidents last hours: the scan covers up to 3 hours (and
  at least 4 windows): 15 min -> 1, 2, 4, 6, 8, 12; 30 min -> 1, 2, 4, 6; 3 h -> 1, 2, 4.
  Every other time constant is a duration turned into windows: the level follows 5 hours, a
  rate learns with a half-life of 2 days, a shift lasting 6 hours is the new normal.
- **The guard, from the rate.** A rate is judged over a horizon only when at least `MIN_DUE`
  findings are due there, so a slice's guard follows its own rate (no ``min_denominator`` to
  pick per metric); a sum only when the horizon usually sees `MIN_EVENTS` events (a sum of
  fewer is dominated by single large orders, beyond what the noise model describes).
- **The threshold, from the series' history** (`PriorTail`). The model's raw score is a
  z-statistic, the largest of one test per horizon. Its tail probability starts from the prior
  those tests give (Bonferroni over the horizons of a two-sided normal tail), so the detector
  works from its first day; the series' own history of raw scores corrects it progressively,
  one point of history weighing as much as one of the prior's `PRIOR_POINTS`: a series whose
  scores run wider than the model claims gets a proportionally higher threshold.
- **One knob.** `sensitivity` is the number of false alerts a watched series may raise per
  week (`FALSE_ALERTS_PER_SERIES_WEEK`; a metric with 20 slices: 20 times that). The score is
  shifted so that the default warning threshold, 4, sits where the calibrated tail probability
  of a window equals that budget divided by the windows of a week, and each further point of
  score is a tenth of that probability: critical (7) is a thousand times rarer than the budget.
  Rules with `auto` keep the default severities (``warning: 4, critical: 7``).

>>> import math, random
>>> rng = random.Random(1)
>>> det = AutoDetector(window=900.0)
>>> def x(i, v): return {"t": i * 900.0, "value": v, "numerator": v, "denominator": 100.0}
>>> day = [1000 * (1.5 + math.sin(2 * math.pi * i / 96)) for i in range(96)]
>>> for i in range(96 * 3):
...     v = rng.gauss(day[i % 96], 40.0)
...     _ = det.score_one(x(i, v)); det.learn_one(x(i, v))
>>> det.model, det.inner.horizons
('seasonal', (1, 2, 4, 6, 8, 12))
>>> det.score_one(x(288, day[0])) < 4 < det.score_one(x(288, 0.5 * day[0]))
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, TypeAlias

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.rate import RateTest
from stream_guard.detect.rolling import RollingQuantiles
from stream_guard.detect.seasonal import SeasonalBaseline
from stream_guard.detect.tail import MAX_SURPRISE

if TYPE_CHECKING:  # imported when built: its period search needs numpy, sums and rates do not
    from stream_guard.detect.tail_surprise import TailSurprise

__all__ = [
    "FALSE_ALERTS_PER_SERIES_WEEK",
    "AutoDetector",
    "PriorTail",
    "scan_horizons",
]

Sensitivity = Literal["low", "medium", "high"]
Model = Literal["seasonal", "rate", "series"]
Inner: TypeAlias = "SeasonalBaseline | RateTest | TailSurprise"

FALSE_ALERTS_PER_SERIES_WEEK: dict[str, float] = {"low": 0.003, "medium": 0.01, "high": 0.03}
"""The budget of each sensitivity: false alerts per watched series per week."""

PRIOR_POINTS = 2000
"""Weight of the prior tail, in points of the series' history (three weeks of 15-min windows)."""

MIN_DUE = 2.0
"""Findings due over a horizon before a rate is judged there."""

MIN_EVENTS = 100.0
"""Events a horizon usually sees before a sum is judged there."""

WARNING = 4.0
"""The default warning severity: where the score meets the false-alert budget."""

_HOUR = 3600.0
_DAY = 86400.0
_WEEK = 7 * _DAY
_SCAN_S = 3 * _HOUR
_CANDIDATE_HORIZONS = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
_UNDECIDED_MAX = 1000  # points kept before the type is read: a series that never says is a sum

PLAIN_AFTER = 100
"""Windows in a row with exactly one event that make a plain series (not a sum or a rate)."""


def scan_horizons(window: float) -> tuple[int, ...]:
    """Windows summed by the scan: up to 3 hours, and at least 4 windows.

    >>> scan_horizons(900.0), scan_horizons(1800.0), scan_horizons(3 * 3600.0)
    ((1, 2, 4, 6, 8, 12), (1, 2, 4, 6), (1, 2, 4))
    """
    return tuple(h for h in _CANDIDATE_HORIZONS if h <= 4 or h * window <= _SCAN_S)


def _windows(duration: float, window: float, least: int = 1) -> int:
    return max(least, round(duration / window))


class PriorTail:
    """``-log10`` tail probability of a raw score: a prior that the series' history corrects.

    The raw score is the largest of `tests` z-tests (one per horizon), either side, so the
    prior is ``p(s) = min(1, tests * P(|N(0, 1)| >= s))`` (Bonferroni): sound from the first
    window. The history checks it where it has data: the 95th percentile of the last `window`
    raw scores against the prior's. A series whose scores run wider than the model claims (a
    heavy-tailed sum, an over-dispersed rate the model has not caught up with) gets its scores
    scaled down by that ratio ``phi`` before the prior's tail is read, so its threshold moves up
    by as much. ``phi`` never goes below 1 (a history narrower than the prior, the usual case
    since the horizons' tests are correlated, does not make the detector more trigger-happy),
    and it enters progressively: ``1 + (phi - 1) * n / (n + prior_weight)`` after ``n`` scores
    (none before `min_count`). A percentile rather than the far tail: it is estimated from a
    few days and is robust to the incidents in them (below 5% of the windows), where a fitted
    exponential tail (`TailCalibrator`) is both fattened by every past incident and, on the
    Gaussian scores of these models, far heavier than the truth beyond the data (issue 12:
    the calibration of `auto_seasonal` needed ~2,000 points and left recall at .14).

    >>> cal = PriorTail(tests=1, prior_weight=1000)
    >>> round(cal.surprise(3.0), 2)  # the prior alone: two-sided normal tail
    2.57
    >>> for i in range(3000):
    ...     cal.update(2.0 * (i % 100) / 40)  # a 95th percentile 2.4x the prior's
    >>> round(cal.phi, 2), round(cal.surprise(3.0), 2)
    (1.93, 0.92)
    """

    def __init__(
        self, tests: int, prior_weight: float = PRIOR_POINTS, window: int = 2000,
        quantile: float = 0.95, min_count: int = 50,
    ) -> None:
        self.tests = tests
        self.prior_weight = prior_weight
        self.quantile = quantile
        self.min_count = min_count
        self._history = RollingQuantiles(window)
        self._reference = self._inverse(1.0 - quantile)
        self.phi = 1.0

    def prior(self, s: float) -> float:
        return min(1.0, self.tests * math.erfc(s / math.sqrt(2.0)))

    def _inverse(self, p: float) -> float:
        """The raw score whose prior tail probability is `p` (bisection)."""
        lo, hi = 0.0, 40.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.prior(mid) > p else (lo, mid)
        return (lo + hi) / 2

    def surprise(self, s: float) -> float:
        p = self.prior(s / self.phi)
        return min(-math.log10(p), MAX_SURPRISE) if p > 0 else MAX_SURPRISE

    def update(self, s: float) -> None:
        h = self._history
        h.update(s)
        n = len(h)
        if n >= self.min_count:
            ratio = h.quantile(self.quantile) / self._reference
            self.phi = 1.0 + max(0.0, ratio - 1.0) * n / (n + self.prior_weight)


class AutoDetector(DetectorBase):
    """The model and its constants read from the series and the window; see the module doc.

    `sensitivity` is the only parameter a rule sets; `window` (seconds) comes from the rule.
    `model` (None until the value type is read) and `inner` (the chosen detector) are public
    for explanations and tests.
    """

    def __init__(self, sensitivity: Sensitivity = "medium", window: float = 3600.0) -> None:
        if sensitivity not in FALSE_ALERTS_PER_SERIES_WEEK:
            raise ValueError(f"sensitivity must be low, medium or high, got {sensitivity!r}")
        self.sensitivity = sensitivity
        self.window = window
        self.horizons = scan_horizons(window)
        budget = FALSE_ALERTS_PER_SERIES_WEEK[sensitivity]
        # surprise at which a window is as rare as the budget allows
        self._bar = math.log10(max(_WEEK / window, 1.0) / budget)
        self.model: Model | None = None
        self.inner: Inner | None = None
        self._unit_run = 0  # windows in a row with exactly one event
        self._pending: list[Features] = []
        self._integral = True  # every numerator so far a whole number (counted findings)
        self._calibration = PriorTail(tests=len(self.horizons))
        self._scored: tuple[Features, float] | None = None  # (x, raw score) of score_one

    # -- the model -------------------------------------------------------------------------
    def _read_type(self, x: Features) -> Model | None:
        """The model `x` decides, or None if it cannot tell (no events, or a single one)."""
        num, den, value = x.get("numerator", 0.0), x.get("denominator", 0.0), x["value"]
        if num != int(num):
            self._integral = False
        self._unit_run = self._unit_run + 1 if den == 1.0 else 0
        if self._unit_run >= PLAIN_AFTER:
            return "series"
        if num == 0.0 or den in (0.0, 1.0):
            return None
        if value == num:
            return "seasonal"
        return "rate" if self._integral else "seasonal"

    def _build(self, model: Model) -> Inner:
        w = self.window
        if model == "series":
            from stream_guard.detect.tail_surprise import TailSurprise

            return TailSurprise()
        if model == "seasonal":
            return SeasonalBaseline(
                window=w, period=_DAY, alpha=min(0.5, w / (5 * _HOUR)),
                absorb_after=_windows(6 * _HOUR, w, 4), min_count=MIN_EVENTS,
                horizons=self.horizons, weekly=True)
        return RateTest(
            half_life=float(_windows(2 * _DAY, w, 8)), min_denominator=0.0, min_due=MIN_DUE,
            warmup=min(12, _windows(_DAY, w, 4)), horizons=self.horizons,
            absorb_after=_windows(6 * _HOUR, w, 4), window=w)

    def _choose(self, x: Features) -> None:
        model = self._read_type(x)
        if model is None and len(self._pending) < _UNDECIDED_MAX:
            self._pending.append(x)
            return
        self.model = model or "seasonal"
        self.inner = self._build(self.model)
        pending, self._pending = self._pending, []
        for p in (*pending, x):
            self._learn_inner(p)

    @property
    def cause(self) -> object | None:
        """The chosen model's reason for its last score (a ratio's drop: `rate.RatioCause`)."""
        return getattr(self.inner, "cause", None)

    # -- the contract ----------------------------------------------------------------------
    def expect_one(self, x: Features) -> float | None:
        return None if self.inner is None else self.inner.expect_one(x)

    def _raw(self, x: Features) -> float:
        """The inner model's score of `x`, computed once for score_one and learn_one."""
        if self._scored is not None and self._scored[0] is x:
            return self._scored[1]
        assert self.inner is not None
        raw = self.inner.score_one(x)
        self._scored = (x, raw)
        return raw

    def score_one(self, x: Features) -> float:
        if self.inner is None or self.inner.expect_one(x) is None:
            return 0.0
        return max(0.0, WARNING + self._surprise(x) - self._bar)

    def _surprise(self, x: Features) -> float:
        """``-log10`` tail probability of `x`: TailSurprise's score is one already (it
        calibrates itself); the count models' z-statistics go through `PriorTail`."""
        if self.model == "series":
            return self._raw(x)
        return self._calibration.surprise(self._raw(x))

    def learn_one(self, x: Features) -> None:
        if self.inner is None:
            self._choose(x)
        else:
            self._learn_inner(x)

    def _learn_inner(self, x: Features) -> None:
        inner = self.inner
        assert inner is not None
        if self.model != "series" and inner.expect_one(x) is not None:
            self._calibration.update(self._raw(x))
        self._scored = None
        inner.learn_one(x)
