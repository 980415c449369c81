"""The detector contract, River-style.

A detector watches one series (one metric, one slice). For each closed window the engine calls,
in this order: ``score_one(x)`` and ``expect_one(x)`` (both before learning), then
``learn_one(x)`` which returns ``None`` (River >= 0.21). ``x`` is `MetricPoint.features()`:
``{"t": window start in epoch seconds, "value", "numerator", "denominator"}``.

- ``score_one`` returns a non-negative float; higher is more anomalous. Our statistical detectors
  return z-like scores (about 0-3 for normal points, 4+ for anomalies) so that one severity
  mapping in a rule (``warning: 4, critical: 7``) means the same thing across detectors.
- ``expect_one`` returns the baseline the detector expected for this point (None while warming
  up); the engine derives the direction (up/down) and the root-cause deviations from it.
- During warm-up a detector scores 0.

Constructor arguments are the hyper-parameters, stored under the same names, so that
`clone()` and the rule loader can rebuild a detector from its parameters.
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["Detector", "DetectorBase", "Features", "ZScored", "score_stream"]

Features = dict[str, float]


@runtime_checkable
class Detector(Protocol):
    def score_one(self, x: Features) -> float: ...

    def expect_one(self, x: Features) -> float | None: ...

    def learn_one(self, x: Features) -> None: ...


class DetectorBase:
    """Convenience base: parameter introspection and cloning, as River's `base.Base`."""

    def _get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in sig.parameters if name != "self"}

    def clone(self) -> DetectorBase:
        """A fresh, untrained detector with the same hyper-parameters."""
        return type(self)(**copy.deepcopy(self._get_params()))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"


class ZScored(DetectorBase, ABC):
    """A detector scored by the magnitude of a signed z-score: `z_one` is positive above the
    expectation, negative below (`CalibratedEnsemble` reads the sign), `score_one` its size."""

    @abstractmethod
    def z_one(self, x: Features) -> float: ...

    def score_one(self, x: Features) -> float:
        return abs(self.z_one(x))


def score_stream(detector: Detector, xs: Iterable[Features]) -> list[float]:
    """The online contract over a series: each point scored, then learned; the scores in order."""
    scores = []
    for x in xs:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    return scores
