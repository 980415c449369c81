"""Small numerical helpers shared by the detectors: EWMA statistics and tail probabilities."""

from __future__ import annotations

import math
from statistics import NormalDist

__all__ = [
    "EWStat", "Recent", "ShiftCounter", "median", "poisson_tail_z", "supported_z", "z_from_p",
]

_NORMAL = NormalDist()
_Z_CAP = 40.0  # beyond this a z-score carries no extra information and only risks overflow
_MAX_COUNT = 1e15  # counts are bounded at this in exact Poisson tails (see poisson_tail_z)


class EWStat:
    """Exponentially weighted mean and variance (West's incremental form).

    >>> s = EWStat(alpha=0.5)
    >>> for v in (1.0, 3.0):
    ...     s.update(v)
    >>> s.mean, round(s.var, 3)
    (2.0, 1.0)
    """

    __slots__ = ("alpha", "mean", "n", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def update(self, value: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = value
            return
        diff = value - self.mean
        incr = self.alpha * diff
        self.mean += incr
        self.var = (1 - self.alpha) * (self.var + diff * incr)

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    def __getstate__(self) -> tuple[float, float, float, int]:
        return (self.alpha, self.mean, self.var, self.n)

    def __setstate__(self, state: tuple[float, float, float, int]) -> None:
        self.alpha, self.mean, self.var, self.n = state


class Recent:
    """The last `size` scored windows of one series, newest last, summed over a horizon.

    Each window is a tuple of floats the detector needs summed (the observation, what was
    expected, a variance, a denominator, the usual number of events...). Summing over h
    windows is the scan statistic behind multi-horizon scores: a shift of 2σ per window is a
    4σ shift over four windows, so a sustained but moderate change (a 25% platform-wide drop
    in a noisy 15-minute GMV window) is caught without lowering the threshold for
    single-window blips.

    >>> r = Recent(size=3)
    >>> for i in range(5):
    ...     r.push((float(i), 1.0, 0.5))
    >>> r.sums(2, (10.0, 1.0, 0.5))  # the current window plus the newest stored one
    (14.0, 2.0, 1.0)
    >>> r.sums(9, (0.0, 0.0, 0.0))  # no more than what is stored
    (9.0, 3.0, 1.5)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[tuple[float, ...]] = []

    def push(self, row: tuple[float, ...]) -> None:
        self.items.append(row)
        if len(self.items) > self.size:
            del self.items[0]

    def sums(self, h: int, current: tuple[float, ...]) -> tuple[float, ...]:
        """Column sums of `current` and the newest ``h - 1`` stored windows (fewer if fewer
        stored)."""
        if h <= 1 or not self.items:
            return current
        return tuple(map(sum, zip(current, *self.items[-(h - 1):], strict=True)))

    def clear(self) -> None:
        self.items.clear()

    def amend_last(self, observation: float) -> None:
        """Overwrite the observation (first field) of the newest window: a window held beyond
        the band, once the next one has said how much of it to believe (`supported_z`)."""
        if self.items:
            self.items[-1] = (observation, *self.items[-1][1:])


def supported_z(held_z: float, next_z: float, band: float) -> float:
    """How far a window held beyond the band may count in later scans, once the next window
    (`next_z`, same units) is known: no further than twice what the next window supports on the
    same side, and never less than `band`.

    One 1e12 order is one window at z = 1e9; left in the scan's sums, it makes every window of
    the next few hours that leans the same way (z = 0.5) an alarm again, in separate episodes.
    An incident's onset is followed by windows of its size, so it keeps its weight:

    >>> supported_z(1e9, 0.5, band=3.0), supported_z(-1e9, 2.0, band=3.0)  # lone spikes
    (3.0, -3.0)
    >>> supported_z(6.0, 4.0, band=3.0), supported_z(20.0, 5.0, band=3.0)  # onsets
    (6.0, 10.0)
    """
    side = math.copysign(1.0, held_z)
    return side * min(abs(held_z), max(band, 2.0 * side * next_z))


def median(values: list[float]) -> float:
    """Median of a short list (a few cycles' or windows' values): cheaper than
    `statistics.median`."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])


class ShiftCounter:
    """Counts consecutive anomalous windows on one side; says when a shift is the new normal.

    A change that outlasts `absorb_after` windows (a new rule that keeps flagging more, a
    permanent price change) has been alerted on already: the detector rebases instead of paging
    all day.

    >>> c = ShiftCounter(absorb_after=2)
    >>> [c.update(side) for side in (1, -1, -1, 0, 1)]
    [False, False, True, False, False]
    """

    def __init__(self, absorb_after: int) -> None:
        self.absorb_after = absorb_after
        self.streak = 0  # signed: +n after n windows above, -n after n below

    def update(self, side: int) -> bool:
        """`side` is +1 (above the band), -1 (below) or 0; True when it is time to rebase."""
        same = side != 0 and side * self.streak > 0
        self.streak = self.streak + side if same else side
        if abs(self.streak) >= self.absorb_after:
            self.streak = 0
            return True
        return False


def z_from_p(p: float) -> float:
    """One-sided tail probability → z-score (0 for p >= 0.5, capped for tiny p).

    >>> round(z_from_p(0.001), 2)
    3.09
    >>> round(z_from_p(1e-20), 2)  # 1 - p would round to 1.0: the lower quantile is exact
    9.26
    """
    if p >= 0.5:
        return 0.0
    if p <= 1e-300:
        return _Z_CAP
    return min(-_NORMAL.inv_cdf(p), _Z_CAP)


def poisson_tail_z(observed: float, expected: float) -> float:
    """Signed z of seeing `observed` events when `expected` were due (Poisson), exact for small
    counts, so that 1 complaint among 3 orders is no alarm while 40 instead of 10 is.

    >>> round(poisson_tail_z(1, 0.06), 2)
    1.57
    >>> poisson_tail_z(40, 10) > 6
    True
    >>> poisson_tail_z(0, 10) < -3
    True
    >>> round(poisson_tail_z(60, 10), 1)  # a far tail, summed directly rather than as 1 - cdf
    10.7
    """
    if expected <= 0:
        return 0.0
    if expected > 200:  # normal approximation with continuity correction, capped like z_from_p
        if observed >= expected:
            return min(max(0.0, (observed - 0.5 - expected) / math.sqrt(expected)), _Z_CAP)
        return max(min(0.0, (observed + 0.5 - expected) / math.sqrt(expected)), -_Z_CAP)
    # A count of 1e15 or more against at most 200 due has a tail below 1e-300 (z capped):
    # bounding it keeps lgamma finite for absurd counts (1e308) and changes no result; a
    # negative count (nonsense, but not worth an error) is no count.
    k = math.floor(min(max(observed, 0.0), _MAX_COUNT) + 1e-9)
    log_pmf_k = k * math.log(expected) - expected - math.lgamma(k + 1)
    if observed > expected:
        return z_from_p(_upper_tail(k, expected, log_pmf_k))
    # P(X <= k) by summing the mass function down from k, in log space
    cdf, log_pmf = 0.0, log_pmf_k
    for i in range(k, -1, -1):
        cdf += math.exp(log_pmf)
        log_pmf += math.log(i) - math.log(expected) if i > 0 else 0.0
    return -z_from_p(min(1.0, cdf))


def _upper_tail(k: int, expected: float, log_pmf_k: float) -> float:
    """P(X >= k) for k above the mean, summed upward until the terms vanish: computing it as
    1 - P(X < k) loses every digit once the tail is below 1e-16."""
    total, log_pmf, i = 0.0, log_pmf_k, k
    while True:
        term = math.exp(log_pmf)
        total += term
        if term <= total * 1e-15 or i > k + 10_000:
            return total
        i += 1
        log_pmf += math.log(expected) - math.log(i)
