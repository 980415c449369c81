"""Count/ratio-aware test for rates on small denominators (complaints per order, ...)."""

from __future__ import annotations

import math

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.stats import Recent, ShiftCounter, poisson_tail_z, supported_z

__all__ = ["DenominatorProfile", "RateTest", "RatioCause"]

_DAY_S = 86400.0
PROFILE_ALPHA = 0.3
"""Weight of one day in a phase's usual denominator."""

_GUARD_FROM = 1.0  # a drop within one sigma of its due count is left unguarded (CPU)

STILL_ON = 1.0
"""z, at the shortest horizon, of a window that keeps a shift going (a one-sigma move)."""

MIN_RELATIVE_VARIANCE = 0.0025
"""Least day-to-day relative variance of the denominator (a 5% standard deviation)."""


class DenominatorProfile:
    """The usual denominator at each phase of the day (one bucket per `window`), and how far
    a day strays from it beyond Poisson noise (`relative_variance`).

    Learning is winsorised at 3 sigmas, so an order flood moves its phase by a bounded step.

    >>> p = DenominatorProfile(window=21600.0)  # four phases of 6 hours
    >>> for day in range(5):
    ...     for phase, den in enumerate((100.0, 400.0, 900.0, 400.0)):
    ...         p.learn(day * 86400.0 + phase * 21600.0, den)
    >>> p.usual(5 * 86400.0 + 2 * 21600.0), p.usual(3600.0 * 7) == 400.0
    (900.0, True)
    >>> DenominatorProfile(window=21600.0).usual(0.0) is None  # a phase not seen yet
    True
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._usual: list[float | None] = [None] * max(1, round(_DAY_S / window))
        self.relative_variance = MIN_RELATIVE_VARIANCE

    def _phase(self, t: float) -> int:
        return int((t % _DAY_S) // self.window) % len(self._usual)

    def usual(self, t: float) -> float | None:
        return self._usual[self._phase(t)]

    def learn(self, t: float, den: float) -> None:
        b = self._phase(t)
        usual = self._usual[b]
        if usual is None or usual <= 0:
            self._usual[b] = den
            return
        var = self.relative_variance
        excess = ((den - usual) ** 2 - usual) / usual**2  # beyond the Poisson part
        self.relative_variance = max(MIN_RELATIVE_VARIANCE,
                                     var + 0.02 * (min(excess, 9.0 * var) - var))
        band = 3.0 * math.sqrt(usual + var * usual**2)
        learned = min(max(den, usual - band), usual + band)
        self._usual[b] = usual + PROFILE_ALPHA * (learned - usual)


class RatioCause:
    """Why a ratio fell, over the horizon that scored it: the numerator against its own usual
    count (the usual rate times the usual denominator at this time of day) and the denominator
    against its usual level. A drop scores only as far as the numerator is low on its own, so
    it reads "numerator outage"; "numerator outage during a denominator surge" when the
    denominator was also up by half or more (a pure surge, numerator as usual, scores 0)."""

    __slots__ = ("denominator", "numerator", "usual_denominator", "usual_numerator")

    def __init__(self, numerator: float, usual_numerator: float, denominator: float,
                 usual_denominator: float) -> None:
        self.numerator = numerator
        self.usual_numerator = usual_numerator
        self.denominator = denominator
        self.usual_denominator = usual_denominator

    @property
    def kind(self) -> str:
        """``numerator_outage``, or ``numerator_outage_in_surge`` when the denominator was up
        by half or more too."""
        surge = self.denominator >= 1.5 * self.usual_denominator > 0
        return "numerator_outage_in_surge" if surge else "numerator_outage"

    @property
    def summary(self) -> str:
        """One line for an analyst.

        >>> RatioCause(3.0, 40.0, 1010.0, 1000.0).summary
        'numerator outage: 3 where 40 are usual at this time of day (denominator 1.01x its usual)'
        >>> RatioCause(3.0, 40.0, 2000.0, 1000.0).kind
        'numerator_outage_in_surge'
        """
        ratio = self.denominator / self.usual_denominator if self.usual_denominator > 0 else 1.0
        kind = self.kind.replace("_in_", " during a denominator ").replace("_", " ")
        return (f"{kind}: {self.numerator:.0f} where {self.usual_numerator:.0f} are usual at "
                f"this time of day (denominator {ratio:.2f}x its usual)")

    def details(self) -> dict[str, float | str]:
        """The fields of the alert's ``ratio`` hint."""
        return {"cause": self.kind, "numerator": round(self.numerator, 3),
                "usual_numerator": round(self.usual_numerator, 3),
                "denominator": round(self.denominator, 3),
                "usual_denominator": round(self.usual_denominator, 3)}


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

    A drop must be the numerator's (the numerator guard): complaints per order also fall when
    orders surge (a bot or test-order flood) while complaints keep their count, and that is
    no complaint lost. So the test also learns the usual denominator at each phase of the day
    (`DenominatorProfile`, one phase per `window` seconds) and, on the low side, each horizon
    scores the smaller of two tests: the numerator against its due count given the
    denominator (the rate test) and against its own usual count (the usual rate times the
    usual denominator at this time of day, widened by the denominator's day-to-day spread). A
    numerator outage fails both; a denominator flood only the first. Until a phase has been
    seen once, drops there score 0. `cause` holds the last drop's `RatioCause` (None after a
    window not scored low).

    Learning: while the scan is beyond `hold` the rate holds, so the first windows of an
    incident, not yet alarming, do not drag the baseline towards the incident (which would hide
    its later windows); `hold` is below the alert threshold for that reason. A window within
    `hold` whose own residual is beyond `clip` is learned at the band. A shift lasting
    `absorb_after` windows beyond `hold` (a new rule that keeps flagging more) becomes the new
    rate after the alert. A window counts towards that only if it is also off the rate on its
    own (`STILL_ON` sigmas at the shortest horizon big enough to act on), not merely through
    the longer horizons' memory: after a 4-hour intake outage, the normal windows whose 3-hour
    scan still reads low do not extend the outage into a "new normal" (the rate was rebased on
    the outage's windows and the recovery paged as a complaint spike).

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
    window = 3600.0
    _last_z: float | None = None  # z of the newest recent window alone
    _warm: tuple[tuple[float, float], ...] = ()  # (numerator, denominator) of warm-up windows
    _profile: DenominatorProfile | None = None  # built at the first window learned
    # (numerator, its usual count, denominator, rate) of the last scored drop
    _last_drop: tuple[float, float, float, float] | None = None

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
        window: float = 3600.0,
    ) -> None:
        if not horizons or min(horizons) < 1:
            raise ValueError(f"horizons must be windows >= 1, got {horizons!r}")
        self.min_due = min_due
        self.window = window
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
        # (numerator, count due, denominator, numerator's usual count at this time of day)
        self._recent = Recent(max(self.horizons))
        self._shift = ShiftCounter(absorb_after)

    def _rate(self) -> float | None:
        if self._n < self.warmup or self._den < 5 * self.min_denominator or self._den <= 0:
            return None
        return self._num / self._den

    def expect_one(self, x: Features) -> float | None:
        rate = self._rate()
        return None if rate is None else rate

    def _scan(self, x: Features, rate: float, guarded: bool = True
              ) -> tuple[float, float]:
        """Signed z of the most surprising horizon on the current window's side (0 if none is
        big enough to act on), and that of the shortest horizon big enough to act on (is a
        shift still on in this window?). A drop's horizons also need the numerator low on its
        own (`guarded`: scores; learning holds the rate on the rate test alone, so a flood's
        windows are not learned into the rate either). Sets `_last_drop` for `cause`."""
        current = self._row(x["numerator"], x["denominator"], x["t"], rate)
        side = 1.0 if current[0] >= current[1] else -1.0
        if guarded:
            self._last_drop = None
        guarded = guarded and side < 0
        if guarded and self._usual_den(x["t"]) is None:
            return 0.0, 0.0  # no usual count to hold the numerator to yet
        best, first = 0.0, None
        for h in self.horizons:
            num, due_h, den_h, own_h = self._recent.sums(h, current)
            if (den_h < self.min_denominator or due_h < self.min_due
                    or side * (num - due_h) < self.min_excess):
                continue
            z = poisson_tail_z(num, due_h) / math.sqrt(self._dispersion * self._inflation(due_h))
            if guarded and side * z > max(abs(best), _GUARD_FROM):  # could win: guard it
                z = max(z, self._own_z(num, own_h))
            first = z if first is None else first
            if side * z > abs(best):
                best = z
                if guarded:
                    self._last_drop = (num, own_h, den_h, rate)
        return best, first or 0.0

    def _row(self, num: float, den: float, t: float, rate: float
             ) -> tuple[float, float, float, float]:
        """A window as the scan sums it: numerator, count due, denominator, and the
        numerator's usual count (the count due, where the phase's usual denominator is not
        known yet)."""
        usual = self._usual_den(t)
        due = den * rate
        return (num, due, den, due if usual is None else usual * rate)

    def _usual_den(self, t: float) -> float | None:
        return None if self._profile is None else self._profile.usual(t)

    def _own_z(self, num: float, own: float) -> float:
        """z of the numerator against its own usual count: Poisson, the learned
        over-dispersion, the rate's estimation error and the denominator's day-to-day spread."""
        if own <= 0:
            return 0.0
        spread = 0.0 if self._profile is None else self._profile.relative_variance
        widen = self._dispersion * self._inflation(own) + own * spread
        return poisson_tail_z(num, own) / math.sqrt(widen)

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
            self._last_drop = None
            return 0.0
        return abs(self._scan(x, rate)[0])

    @property
    def cause(self) -> RatioCause | None:
        """Why the last window scored low: its drop's numbers over the horizon that scored
        it (None if it did not score low)."""
        if self._last_drop is None:
            return None
        num, own, den, rate = self._last_drop
        return RatioCause(num, own, den, own / rate if rate > 0 else 0.0)

    def learn_one(self, x: Features) -> None:
        num, den = x["numerator"], x["denominator"]
        if den <= 0:
            return
        rate = self._rate()
        if rate is None:
            self._warm_up(num, den)
            self._learn_profile(x)
            return
        row = self._row(num, den, x["t"], rate)
        due = row[1]
        scan, shortest = self._scan(x, rate, guarded=False)
        self._learn_profile(x)
        side = 1 if scan > self.hold else -1 if scan < -self.hold else 0
        still_on = side * shortest > STILL_ON
        if self._shift.update(side if still_on else 0):
            self._rebase(num, den)
            return
        z = poisson_tail_z(num, due)  # this window alone: undivided Pearson-like residual
        self._trim_last(z)
        self._recent.push(row)
        self._last_z = z
        if side != 0:  # beyond `hold` the rate holds
            return
        if den >= self.min_denominator:  # tiny windows say little about the spread
            self._dispersion += 0.02 * (min(z * z, 25.0) - self._dispersion)
            self._dispersion = max(self._dispersion, 1.0)
        self._add(self._winsorised(num, due, z), den)

    def _learn_profile(self, x: Features) -> None:
        if self._profile is None:
            self._profile = DenominatorProfile(self.window)
        self._profile.learn(x["t"], x["denominator"])

    def __setstate__(self, state: dict[str, object]) -> None:
        """Detectors pickled before the numerator guard kept 3 numbers per recent window: the
        numerator's usual count is taken as the count due (the guard learns from then on)."""
        self.__dict__.update(state)
        recent = self._recent
        recent.items = [row if len(row) == 4 else (*row, row[1]) for row in recent.items]

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
        nums, _, dens, _ = self._recent.sums(max(self.horizons), (num, 0.0, den, 0.0))
        if dens > 0:
            self._num = self._den * nums / dens
        self._recent.clear()
        self._last_z = None
