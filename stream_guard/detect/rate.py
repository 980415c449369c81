"""Count/ratio-aware test for rates on small denominators (complaints per order, ...)."""

from __future__ import annotations

import math

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.stats import Recent, ShiftCounter, poisson_tail_z, supported_z

__all__ = ["RateTest"]


class RateTest(DetectorBase):
    """Is this window's numerator surprising given its denominator and the usual rate?

    The usual rate is a ratio of exponentially weighted sums (numerator / denominator), so busy
    windows weigh more than quiet ones. The surprise is an exact Poisson tail of the numerator
    given ``denominator × rate``, turned into a z-score and divided by the learned
    over-dispersion: a slice with 3 orders and 1 complaint pages nobody, 40 complaints where 10
    were due does. `half_life` is in windows; the baseline needs `warmup` windows and a
    denominator mass of 5 × `min_denominator` before it scores.

    The test scans `horizons`: the numerators and the counts due over the last h windows are
    summed (a scan statistic), so a rate that triples for an hour in a slice that sees five
    complaints an hour, or an incident split over two windows, is caught on its total. Only
    horizons on the current window's side count. A horizon whose summed denominator is below
    `min_denominator`, whose findings due are fewer than `min_due` (the same guard in units
    that need no knowledge of the usual rate), or whose numerator excess is below
    `min_excess`, is too small to act on;
    the gates apply to the horizon's totals, not to the current window, so a quiet window
    inside a sustained jump (a slice with 40 listings in a night half-hour) still adds its
    findings to the scan instead of resetting it.

    Learning: while the scan is beyond `hold` the rate holds, so the first windows of an
    incident, not yet alarming, do not drag the baseline towards the incident (which would hide
    its later windows); `hold` is below the alert threshold for that reason. A window within
    `hold` whose own residual is beyond `clip` is learned at the band. A shift lasting
    `absorb_after` windows beyond `hold` (a new rule that keeps flagging more) becomes the new
    rate after the alert.

    >>> det = RateTest(min_denominator=20)
    >>> for _ in range(48):
    ...     det.learn_one({"t": 0.0, "value": 0.02, "numerator": 20.0, "denominator": 1000.0})
    >>> det.score_one({"t": 0.0, "value": 1 / 3, "numerator": 1.0, "denominator": 3.0})
    0.0
    >>> det.score_one({"t": 0.0, "value": 0.08, "numerator": 80.0, "denominator": 1000.0}) > 7
    True
    """

    # Class-level defaults, so that detectors pickled before these existed load and continue.
    min_due = 0.0
    _last_z: float | None = None  # z of the newest recent window alone
    _warm: tuple[tuple[float, float], ...] = ()  # (numerator, denominator) of warm-up windows

    def __init__(
        self,
        half_life: float = 48.0,
        min_denominator: float = 30.0,
        min_excess: float = 3.0,
        warmup: int = 12,
        clip: float = 3.0,
        horizons: tuple[int, ...] = (1,),
        absorb_after: int = 12,
        hold: float = 3.0,
        min_due: float = 0.0,
    ) -> None:
        if not horizons or min(horizons) < 1:
            raise ValueError(f"horizons must be windows >= 1, got {horizons!r}")
        self.min_due = min_due
        self.half_life = half_life
        self.min_denominator = min_denominator
        self.min_excess = min_excess
        self.warmup = warmup
        self.clip = clip
        self.horizons = tuple(horizons)
        self.absorb_after = absorb_after
        self.hold = hold
        self._decay = 0.5 ** (1.0 / half_life)
        self._num = 0.0
        self._den = 0.0
        self._n = 0
        self._dispersion = 1.0  # mean squared Pearson residual; 1 for a pure Poisson process
        self._recent = Recent(max(self.horizons))  # (numerator, count due, denominator)
        self._shift = ShiftCounter(absorb_after)

    def _rate(self) -> float | None:
        if self._n < self.warmup or self._den < 5 * self.min_denominator or self._den <= 0:
            return None
        return self._num / self._den

    def expect_one(self, x: Features) -> float | None:
        rate = self._rate()
        return None if rate is None else rate

    def _scan(self, x: Features, rate: float) -> float:
        """Signed z of the most surprising horizon on the current window's side (0 if none is
        big enough to act on)."""
        due = x["denominator"] * rate
        current = (x["numerator"], due, x["denominator"])
        side = 1.0 if x["numerator"] >= due else -1.0
        best = 0.0
        for h in self.horizons:
            num, due_h, den_h = self._recent.sums(h, current)
            if (den_h < self.min_denominator or due_h < self.min_due
                    or side * (num - due_h) < self.min_excess):
                continue
            z = poisson_tail_z(num, due_h) / math.sqrt(self._dispersion * self._inflation(due_h))
            if side * z > abs(best):
                best = z
        return best

    def _inflation(self, due: float) -> float:
        """How much the usual rate's own estimation error widens the test of `due` findings.

        The rate is learned from a weighted mass of `_num` findings; over exponential weights
        that counts as ``(1 + decay) × _num`` independent ones, so the rate is off by a relative
        variance of one over that, which adds ``due² / n`` to the Poisson variance `due`. Early
        on (tens of findings learned) this keeps a baseline that is 20% low by chance from
        paging on an ordinary evening; once hundreds are learned it is a few percent.
        """
        learned = (1.0 + self._decay) * self._num
        return 1.0 + due / learned if learned > 0 else 1.0

    def score_one(self, x: Features) -> float:
        rate = self._rate()
        if rate is None:
            return 0.0
        return abs(self._scan(x, rate))

    def learn_one(self, x: Features) -> None:
        num, den = x["numerator"], x["denominator"]
        if den <= 0:
            return
        rate = self._rate()
        if rate is None:
            self._warm_up(num, den)
            return
        due = den * rate
        scan = self._scan(x, rate)
        side = 1 if scan > self.hold else -1 if scan < -self.hold else 0
        if self._shift.update(side):
            self._rebase(num, den)
            return
        z = poisson_tail_z(num, due)  # this window alone: undivided Pearson-like residual
        self._trim_last(z)
        self._recent.push((num, due, den))
        self._last_z = z
        if side != 0:  # beyond `hold` the rate holds
            return
        if den >= self.min_denominator:  # tiny windows say little about the spread
            self._dispersion += 0.02 * (min(z * z, 25.0) - self._dispersion)
            self._dispersion = max(self._dispersion, 1.0)
        self._add(self._winsorised(num, due, z), den)

    def _add(self, num: float, den: float) -> None:
        self._num = self._decay * self._num + max(num, 0.0)
        self._den = self._decay * self._den + den
        self._n += 1

    def _winsorised(self, num: float, due: float, z: float) -> float:
        """`num` as the rate learns it: an outlier (beyond `clip` sigmas, widened by the
        dispersion) at the band."""
        if abs(z) > self.clip * math.sqrt(self._dispersion):
            return due + math.copysign(self.clip, z) * math.sqrt(due)
        return num

    def _warm_up(self, num: float, den: float) -> None:
        """Learning before the rate is trusted (scores are 0 meanwhile). The first `warmup`
        windows are kept and learned together once all are in, each winsorised against the
        rate of the others: the first window of a slice may be the one with a million
        complaints, and learned as is it would be the rate for days. Later windows (a slice
        still short of denominator mass) are winsorised against the rate so far."""
        if self._n == 0 and len(self._warm) < self.warmup:
            self._warm += ((num, den),)
            if len(self._warm) == self.warmup:
                total_num = sum(n for n, _ in self._warm)
                total_den = sum(d for _, d in self._warm)
                for n, d in self._warm:
                    others = total_den - d
                    due = d * (total_num - n) / others if others > 0 else 0.0
                    self._add(self._winsorised(n, due, poisson_tail_z(n, due)), d)
                self._warm = ()
            return
        due = den * self._num / self._den if self._den > 0 else 0.0
        self._add(self._winsorised(num, due, poisson_tail_z(num, due)), den)

    def _trim_last(self, z: float) -> None:
        """The newest of the recent windows stays in the horizon scans only as far beyond its
        due count as this window (`z`, alone) supports (`stats.supported_z`)."""
        if self._last_z is None or not self._recent.items:
            return
        kept = supported_z(self._last_z, z, self.clip * math.sqrt(self._dispersion))
        if kept != self._last_z:
            due = self._recent.items[-1][1]
            self._recent.amend_last(due + kept * math.sqrt(due))

    def _rebase(self, num: float, den: float) -> None:
        """A shift outlasted `absorb_after` windows: the recent windows' rate is the new rate
        (the weighted denominator mass is kept, so the baseline stays as confident)."""
        nums, _, dens = self._recent.sums(max(self.horizons), (num, 0.0, den))
        if dens > 0:
            self._num = self._den * nums / dens
        self._recent.clear()
        self._last_z = None
