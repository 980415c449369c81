"""Static threshold rule: an operator's hard bound ("GMV under 1,000 per window is an outage")."""

from __future__ import annotations

from stream_guard.detect.base import DetectorBase, Features

__all__ = ["StaticThreshold"]


class StaticThreshold(DetectorBase):
    """Scores 0 inside ``[lower, upper]``; outside, `breach_score` plus the relative excess × 10,
    so a breach always reaches the usual warning level (4) and a far breach reaches critical.

    >>> det = StaticThreshold(upper=0.05)
    >>> det.score_one({"t": 0.0, "value": 0.04, "numerator": 4.0, "denominator": 100.0})
    0.0
    >>> det.score_one({"t": 0.0, "value": 0.06, "numerator": 6.0, "denominator": 100.0})
    7.0
    >>> det.expect_one({"t": 0.0, "value": 0.06, "numerator": 6.0, "denominator": 100.0})
    0.05
    """

    def __init__(
        self, lower: float | None = None, upper: float | None = None, breach_score: float = 5.0
    ) -> None:
        if lower is None and upper is None:
            raise ValueError("a static threshold needs `lower`, `upper` or both")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower ({lower}) is above upper ({upper})")
        self.lower = lower
        self.upper = upper
        self.breach_score = breach_score

    def _bound(self, value: float) -> float | None:
        if self.upper is not None and value > self.upper:
            return self.upper
        if self.lower is not None and value < self.lower:
            return self.lower
        return None

    def expect_one(self, x: Features) -> float | None:
        bound = self._bound(x["value"])
        return x["value"] if bound is None else bound

    def score_one(self, x: Features) -> float:
        bound = self._bound(x["value"])
        if bound is None:
            return 0.0
        excess = abs(x["value"] - bound) / max(abs(bound), 1e-9)
        return round(self.breach_score + 10.0 * excess, 6)

    def learn_one(self, x: Features) -> None:
        return None  # a static rule has nothing to learn
