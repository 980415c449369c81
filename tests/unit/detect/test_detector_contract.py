"""The same contract checks on every detector of the NAB family (River's check suite, in small)."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Callable

import pytest

from stream_guard.detect.auto_seasonal import AutoSeasonal
from stream_guard.detect.base import DetectorBase
from stream_guard.detect.ensemble import CalibratedEnsemble
from stream_guard.detect.refractory import Refractory
from stream_guard.detect.robust_zscore import RobustZScore
from stream_guard.detect.seasonal_residual import SeasonalResidual

FACTORIES: dict[str, Callable[[], DetectorBase]] = {
    "auto_seasonal": AutoSeasonal,
    "seasonal_residual": SeasonalResidual,
    "robust_zscore": RobustZScore,
    "ensemble": lambda: CalibratedEnsemble([SeasonalResidual(), RobustZScore()]),
    "refractory": lambda: Refractory(SeasonalResidual(), level=4.0, hold=20),
}
SPIKES = (1500, 1800)


def _stream(n: int = 2000, seed: int = 11) -> list[dict[str, float]]:
    """Hourly series with a daily cycle, Gaussian noise and two spikes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        v = 50 + 20 * math.sin(2 * math.pi * i / 24) + rng.gauss(0, 2)
        v += 40.0 if i in SPIKES else 0.0
        out.append({"t": 3600.0 * i, "value": v, "numerator": v, "denominator": 1.0})
    return out


def _replay(det: DetectorBase, xs: list[dict[str, float]]) -> list[float]:
    scores = []
    for x in xs:
        scores.append(det.score_one(x))  # type: ignore[attr-defined]
        assert det.learn_one(x) is None  # type: ignore[attr-defined]
    return scores


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[], DetectorBase]:
    return FACTORIES[request.param]


def test_scores_zero_before_learning_and_expects_nothing(
    factory: Callable[[], DetectorBase],
) -> None:
    det = factory()
    x = _stream(1)[0]
    assert det.score_one(x) == 0.0  # type: ignore[attr-defined]
    assert det.expect_one(x) is None  # type: ignore[attr-defined]


def test_scores_are_finite_non_negative_and_x_is_untouched(
    factory: Callable[[], DetectorBase],
) -> None:
    xs = _stream()
    before = copy.deepcopy(xs)
    scores = _replay(factory(), xs)
    assert xs == before
    assert all(math.isfinite(s) and s >= 0 for s in scores)


def test_spikes_score_above_every_normal_point(factory: Callable[[], DetectorBase]) -> None:
    scores = _replay(factory(), _stream())
    normal = max(s for i, s in enumerate(scores[1000:], 1000) if i not in SPIKES)
    assert min(scores[i] for i in SPIKES) > normal


def test_pickle_round_trip_preserves_state(factory: Callable[[], DetectorBase]) -> None:
    xs = _stream()
    det = factory()
    _replay(det, xs[:1200])
    restored = pickle.loads(pickle.dumps(det))
    assert _replay(restored, xs[1200:]) == _replay(det, xs[1200:])


def test_deterministic_and_clone_is_fresh(factory: Callable[[], DetectorBase]) -> None:
    xs = _stream(1300)
    det = factory()
    first = _replay(det, xs)
    fresh = det.clone()
    assert repr(fresh) == repr(factory())
    assert _replay(fresh, xs) == first
