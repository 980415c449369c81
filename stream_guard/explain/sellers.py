"""Which sellers carry a count or ratio metric's change, when a few do.

Sources keep a Misra-Gries summary of the sellers behind each window's counted events
(aggregate/windows.py `heavy_hitters`); the owner merges them. Here, per metric:

- `SellerBaseline`: each seller's usual count per window, an exponentially weighted mean over
  the normal windows learned (corrected for its start from zero), for at most `capacity`
  sellers (the largest; a seller beyond is presumed to usually have at most the smallest
  count kept, the Space-Saving bound).
- `carrying_sellers`: the test. The null is "the change is spread over the sellers in
  proportion to their usual counts": seller *s* then counts Poisson(λ_s), λ_s its usual count
  times the platform's factor (1 + its relative change). A seller is flagged when its count is
  beyond that null at family-wise level `ALPHA` (Bonferroni over every seller looked at: the
  window's and the baseline's), the same a-priori level as localize.py's. The flagged
  sellers, largest own change first, up to the rule's `top`, *carry* the change when together
  they account for more than half of it (a majority is what "carry" means; no constant here
  was fitted to data), or when the rest of the platform, without them, did not move beyond
  its Poisson noise at `ALPHA` (the platform's change is itself noisy: 4 violations of 8.1
  over 26.9 expected are 49% of it, yet the other 23 sellers' 4.1 are noise). Otherwise
  nothing is said: a change many sellers share is not theirs.

>>> base = SellerBaseline(half_life=1.0, capacity=10)
>>> base.learn({f"s{i}": 2.0 for i in range(20)})
>>> window = {f"s{i}": 2.0 for i in range(20)} | {"s3": 40.0, "s7": 25.0}
>>> found = carrying_sellers(window, base, change=61.0, expected=40.0, up=True, top=5)
>>> [(s.seller, s.change) for s in found.sellers], round(found.share, 2)
([('s3', 38.0), ('s7', 23.0)], 1.0)
>>> carrying_sellers({f"s{i}": 4.0 for i in range(20)}, base, 40.0, 40.0, True, 5) is None
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from stream_guard.aggregate.plan import MISSING_DIM
from stream_guard.aggregate.windows import OTHER

__all__ = ["ALPHA", "SellerBaseline", "SellerChange", "Sellers", "carrying_sellers",
           "poisson_tail"]

ALPHA = 0.05
"""Family-wise false-alarm rate of the flag (as localize.Params.alpha)."""
_CARRY = 0.5  # "carry" = more than half of the change: a definition, not a fitted constant


@dataclass(frozen=True, slots=True)
class SellerChange:
    seller: str
    change: float  # this window's count minus the seller's usual count


@dataclass(frozen=True, slots=True)
class Sellers:
    sellers: tuple[SellerChange, ...]
    share: float  # of the metric's change, in (0.5, 1]


class SellerBaseline:
    """Each seller's usual count per window (EWMA over normal windows), bounded."""

    def __init__(self, half_life: float, capacity: int) -> None:
        self.keep = 0.5 ** (1.0 / half_life)
        self.half_life = half_life
        self.capacity = capacity
        self.usual: dict[str, float] = {}
        self.floor = 0.0  # the usual count of a seller not kept (Space-Saving bound)
        self.weight = 0.0  # 1 - keep ** windows learned: the means' start-up bias

    def learn(self, window: Mapping[str, float]) -> None:
        keep = self.keep
        usual = {s: keep * v for s, v in self.usual.items()}
        for seller, count in window.items():
            if seller not in (OTHER, MISSING_DIM):
                usual[seller] = usual.get(seller, 0.0) + (1.0 - keep) * count
        if len(usual) > self.capacity:
            ranked = sorted(usual.items(), key=lambda kv: (-kv[1], kv[0]))
            self.floor = max(self.floor * keep, ranked[self.capacity][1])
            usual = dict(ranked[: self.capacity])
        self.usual = {s: v for s, v in usual.items() if v > 1e-6}
        self.weight = keep * self.weight + (1.0 - keep)

    def expected(self, seller: str) -> float:
        """Its usual count; a seller never kept: the floor, or half an event over the
        baseline's memory (~half_life / ln 2 windows) while nothing was ever dropped."""
        found = self.usual.get(seller)
        if found is not None:
            return max(found, self.floor) / self.weight
        return (self.floor or 0.5 * math.log(2) / self.half_life) / self.weight


def poisson_tail(k: float, lam: float, up: bool) -> float:
    """P(X >= k) (`up`) or P(X <= k) for X ~ Poisson(lam), k rounded to an integer.

    >>> round(poisson_tail(3, 1.0, True), 4), round(poisson_tail(0, 2.0, False), 4)
    (0.0803, 0.1353)
    """
    n = round(k)
    if lam <= 0:
        return 0.0 if up and n > 0 else 1.0
    below = n if up else n + 1  # P(X < below)
    term = total = math.exp(-lam)
    for j in range(1, below):
        term *= lam / j
        total += term
    cdf = min(1.0, total) if below > 0 else 0.0
    return max(0.0, 1.0 - cdf) if up else cdf


def carrying_sellers(
    window: Mapping[str, float], baseline: SellerBaseline, change: float, expected: float,
    up: bool, top: int,
) -> Sellers | None:
    """The few sellers that carry `change` (the metric's actual − expected, counted events;
    `expected` the metric's expected count), or None (see the module docstring)."""
    sign = 1.0 if up else -1.0
    if sign * change <= 0 or expected <= 0 or baseline.weight <= 0:
        return None  # nothing learned yet: no seller is unusual
    factor = max(0.0, 1.0 + change / expected)
    names = [s for s in window if s not in (OTHER, MISSING_DIM)]
    looked_at = max(1, len(set(names) | baseline.usual.keys()))
    flagged = []
    for seller in names:
        usual = baseline.expected(seller)
        own = window[seller] - usual
        if sign * own > 0 and poisson_tail(window[seller], usual * factor, up) < ALPHA / looked_at:
            flagged.append(SellerChange(seller, own))
    flagged.sort(key=lambda s: (-abs(s.change), s.seller))
    named = tuple(flagged[:top])
    if not named:
        return None
    share = sum(s.change for s in named) / change
    if share > _CARRY or _rest_is_noise(window, baseline, named, expected + change, expected,
                                        up):
        return Sellers(named, min(1.0, share))
    return None


def _rest_is_noise(
    window: Mapping[str, float], baseline: SellerBaseline, named: tuple[SellerChange, ...],
    actual: float, expected: float, up: bool,
) -> bool:
    """Whether the platform without the `named` sellers is within its Poisson noise."""
    rest = actual - sum(window[s.seller] for s in named)
    usual = expected - sum(baseline.expected(s.seller) for s in named)
    return usual > 0 and poisson_tail(max(rest, 0.0), usual, up) >= ALPHA
