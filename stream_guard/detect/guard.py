"""The numerical guard every detector a rule builds runs behind (`registry.build_detector`).

Detectors are written for the values business metrics take. Whatever else reaches them -- a
window sum that overflowed to inf, a NaN from a broken upstream, a 1e308 order that got past a
schema without a maximum -- must neither crash the owner of the metric (an OverflowError in one
slice's detector stopped a whole replay) nor leave a NaN or an inf in a model's state, where it
stays: every later expectation NaN, every score NaN, silently. One wrapper does it for every
detector type, instead of each detector re-checking its input:

- features are clamped to ±`MAX_MAGNITUDE`: far beyond any metric, yet its square (a variance)
  and its fourth power are finite doubles, so the detectors' arithmetic cannot overflow;
- a point with a NaN feature scores 0, has no expectation and is not learned; a point with an
  infinite one is scored as clamped (an overflowing window is an anomaly worth a look) but not
  learned: nothing non-finite, and nothing that was, enters a model;
- scores are finite, in [0, `MAX_SCORE`]; an expectation that is not finite is None.

Keeping one outlier from costing more than one episode is each detector's own business (how it
learns); this only makes sure arithmetic cannot fail.
"""

from __future__ import annotations

import math

from stream_guard.detect.base import Detector, DetectorBase, Features

__all__ = ["MAX_MAGNITUDE", "MAX_SCORE", "Guarded"]

MAX_MAGNITUDE = 1e50
"""Features are clamped to ±this before a detector sees them."""
MAX_SCORE = 1e3
"""Scores are capped here: a z of 1000 says nothing a z of 50 does not, and stays printable."""


class Guarded(DetectorBase):
    """Wraps a detector: finite, bounded inputs in; finite, bounded scores out.

    >>> from stream_guard.detect.seasonal import SeasonalBaseline
    >>> det = Guarded(SeasonalBaseline(window=3600, period=86400))
    >>> for h in range(48):
    ...     v = 1e308 if h == 30 else 100.0  # one absurd window on day 2
    ...     x = {"t": h * 3600.0, "value": v, "numerator": v, "denominator": 1.0}
    ...     s = det.score_one(x); det.learn_one(x)
    >>> det.score_one({"t": 48 * 3600.0, "value": float("inf"), "numerator": 0.0,
    ...                "denominator": 1.0})
    1000.0
    >>> det.score_one({"t": 48 * 3600.0, "value": float("nan"), "numerator": 0.0,
    ...                "denominator": 1.0})
    0.0
    >>> round(det.expect_one({"t": 48 * 3600.0, "value": 1.0, "numerator": 0.0,
    ...                       "denominator": 1.0}))
    100
    """

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def clone(self) -> Guarded:
        """A fresh guard around a fresh (untrained) clone of the inner detector."""
        inner = self.detector
        if not isinstance(inner, DetectorBase):
            raise TypeError(f"cannot clone guarded detector {inner!r}: not a DetectorBase")
        return type(self)(inner.clone())  # type: ignore[arg-type]

    @property
    def cause(self) -> object | None:
        """The inner detector's reason for its last score, if it gives one (a ratio's drop:
        `rate.RatioCause`)."""
        return getattr(self.detector, "cause", None)

    def score_one(self, x: Features) -> float:
        safe = _clamped(x)
        if safe is None:
            return 0.0
        score = self.detector.score_one(safe)
        return min(score, MAX_SCORE) if score > 0.0 else 0.0  # NaN > 0 is False

    def expect_one(self, x: Features) -> float | None:
        safe = _clamped(x)
        expected = None if safe is None else self.detector.expect_one(safe)
        return expected if expected is not None and math.isfinite(expected) else None

    def learn_one(self, x: Features) -> None:
        safe = _clamped(x)
        if safe is not None and all(map(math.isfinite, x.values())):
            self.detector.learn_one(safe)


def _clamped(x: Features) -> Features | None:
    """`x` itself when every feature is within ±`MAX_MAGNITUDE` (no copy on the common path),
    else a copy clamped there; None when a feature is NaN."""
    if all(-MAX_MAGNITUDE <= v <= MAX_MAGNITUDE for v in x.values()):  # NaN fails the test
        return x
    if any(math.isnan(v) for v in x.values()):
        return None
    return {k: min(max(v, -MAX_MAGNITUDE), MAX_MAGNITUDE) for k, v in x.items()}
