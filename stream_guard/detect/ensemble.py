"""Multi-scale, calibrated ensemble of signed-z detectors.

Each member turns a point into a signed z (`SignedZ`: ``z_one``). A spike shows in one point's z;
a level shift or a flattened cycle shows in the mean z of the last few points long before any
single point looks odd. So for every member and every ``horizon`` k the ensemble tracks the
absolute mean of the member's last k signed z's (``horizons`` may also be given per member: a
member that only adds evidence at long horizons need not pay, in cost, memory and Bonferroni
correction, for the short ones), and calibrates each of these features into a
surprise (``-log10`` tail probability, `TailCalibrator`) against that feature's own recent
history on this series. Calibration is what makes the features (and series) comparable: the
ensemble score is the largest surprise less ``log10`` of the number of features (a Bonferroni
correction, so that adding features does not by itself raise false alarms). A feature whose
surprise exceeds ``clip`` enters its history winsorised (see `TailCalibrator`): incidents must
not teach the reference that incidents are normal; with ``trust_count``, a feature value reached
that many times in the window (as it came) is no rarer than its frequency (`TailCalibrator`).

While a member warms up (``expect_one`` is None) its z's are not history: a run of warm-up
zeros in the reference would make the first real residuals look extreme. Each feature then
scores 0 until ``min_count`` values of its history are in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.tail import TailCalibrator

__all__ = ["CalibratedEnsemble", "SignedZ"]


@runtime_checkable
class SignedZ(Protocol):
    """A detector that also exposes its signed z-score (positive: above expectation)."""

    def z_one(self, x: Features) -> float: ...

    def expect_one(self, x: Features) -> float | None: ...

    def learn_one(self, x: Features) -> None: ...


class CalibratedEnsemble(DetectorBase):
    """Largest calibrated surprise over members x horizons (z-like: anomalies 4+).

    >>> import random
    >>> from stream_guard.detect.seasonal_residual import SeasonalResidual
    >>> rng = random.Random(3)
    >>> det = CalibratedEnsemble([SeasonalResidual(warmup=50)], horizons=(1, 8), min_count=100)
    >>> scores = []
    >>> for i in range(1500):
    ...     v = rng.gauss(0, 1) + (12.0 if i == 1400 else 0.0)
    ...     x = {"t": 60.0 * i, "value": v, "numerator": v, "denominator": 1.0}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> max(scores[:1400]) < 5 < scores[1400]
    True
    """

    def __init__(
        self,
        members: Sequence[SignedZ],
        horizons: Sequence[int] | Sequence[Sequence[int]] = (1, 8),
        calibration_window: int = 2000,
        tail_fraction: float = 0.05,
        min_count: int = 100,
        clip: float | None = 3.0,
        trust_count: int | None = None,
    ) -> None:
        self.members = members
        self.horizons = horizons
        self.calibration_window = calibration_window
        self.tail_fraction = tail_fraction
        self.min_count = min_count
        self.clip = clip
        self.trust_count = trust_count
        self._horizons = _per_member(horizons, len(members))
        self._z: list[deque[float]] = [deque(maxlen=max(h)) for h in self._horizons]
        self._calibrators = [
            [TailCalibrator(calibration_window, tail_fraction, min_count, clip=clip,
                            trust_count=trust_count) for _ in h]
            for h in self._horizons
        ]
        self._correction = math.log10(sum(len(h) for h in self._horizons))
        # (t, value) of the point last scored, its members' z and features: learn_one reuses them.
        self._cache: tuple[tuple[float, float], list[float], list[list[float]]] | None = None

    def clone(self) -> CalibratedEnsemble:
        """A fresh ensemble whose members are fresh clones too (as River clones nested models)."""
        params = self._get_params()
        params["members"] = [_fresh(m) for m in self.members]
        return type(self)(**params)

    def _features(self, x: Features) -> tuple[list[float], list[list[float]]]:
        """Members' z and |mean of the last k signed z| per member and horizon (x included)."""
        key = (x["t"], x["value"])
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        zs, feats = [], []
        for member, past, horizons in zip(self.members, self._z, self._horizons, strict=True):
            z = member.z_one(x)
            window = [*past, z]
            zs.append(z)
            feats.append([abs(sum(window[-k:])) / k for k in horizons])
        self._cache = (key, zs, feats)
        return zs, feats

    def feature_surprises(self, x: Features) -> list[list[float]]:
        """Calibrated surprise of every feature (members x horizons), before learning ``x``."""
        _, feats = self._features(x)
        return [
            [cal.surprise(f) for cal, f in zip(cals, row, strict=True)]
            for cals, row in zip(self._calibrators, feats, strict=True)
        ]

    def score_one(self, x: Features) -> float:
        best = max(max(row) for row in self.feature_surprises(x))
        return max(best - self._correction, 0.0)

    def expect_one(self, x: Features) -> float | None:
        return self.members[0].expect_one(x)

    def learn_one(self, x: Features) -> None:
        zs, feats = self._features(x)
        for member, past, cals, row, z in zip(
            self.members, self._z, self._calibrators, feats, zs, strict=True
        ):
            if member.expect_one(x) is not None:  # a warming-up member's zeros are not history
                past.append(z)
                for cal, f in zip(cals, row, strict=True):
                    cal.update(f)
            member.learn_one(x)
        self._cache = None


def _per_member(
    horizons: Sequence[int] | Sequence[Sequence[int]], n_members: int
) -> list[tuple[int, ...]]:
    """One tuple of horizons per member: the same for all if given as plain ints."""
    flat = [h for h in horizons if isinstance(h, int)]
    if len(flat) == len(horizons):
        return [tuple(flat)] * n_members
    per_member = [tuple(h) for h in horizons if not isinstance(h, int)]
    if len(per_member) != len(horizons) or len(per_member) != n_members or not all(per_member):
        raise ValueError(f"need one non-empty horizon list per member, got {horizons!r}")
    return per_member


def _fresh(member: SignedZ) -> SignedZ:
    """An untrained copy of a member (members are expected to be `DetectorBase`)."""
    if isinstance(member, DetectorBase):
        return member.clone()  # type: ignore[return-value]
    raise TypeError(f"cannot clone ensemble member {member!r}: not a DetectorBase")
