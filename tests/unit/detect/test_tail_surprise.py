"""TailSurprise on the shapes NAB and business metrics are made of (seeded synthetic series),
and the calibration of its score: on stationary noise, the share of points scoring at least s
is about 10^-s."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import pytest

from stream_guard.detect.registry import build_detector
from stream_guard.detect.tail_surprise import RobustResidual, TailSurprise

ALERT = 4.0  # the warning level alerts are read at


def _x(i: int, v: float) -> dict[str, float]:
    return {"t": 300.0 * i, "value": v, "numerator": v, "denominator": 1.0}


def _run(det: TailSurprise, values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Scores and calibrated (pre-refractory) scores, each point scored before it is learnt."""
    scores, calibrated = [], []
    for i, v in enumerate(values):
        x = _x(i, v)
        calibrated.append(det.calibrated_one(x))
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores, calibrated


def _daily(i: int) -> float:
    return 10.0 + 5.0 * math.sin(2 * math.pi * i / 96)


def _series(seed: int, n: int, noise: Callable[[random.Random, int], float]) -> list[float]:
    rng = random.Random(seed)
    return [_daily(i) + noise(rng, i) for i in range(n)]


def _gauss(rng: random.Random, i: int) -> float:
    return rng.gauss(0.0, 1.0)


def _student3(rng: random.Random, i: int) -> float:
    """Student t with 3 degrees of freedom: finite variance, polynomial tails."""
    return rng.gauss(0.0, 1.0) / math.sqrt(rng.gammavariate(1.5, 1.0 / 1.5))


def _poisson(rng: random.Random, lam: float) -> float:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return float(k)
        k += 1


def _alarms(scores: Sequence[float], start: int = 800) -> list[int]:
    return [i for i, s in enumerate(scores) if i >= start and s >= ALERT]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kwargs", [{}, {"horizons": (1,), "shift_window": None}])
def test_score_is_a_calibrated_tail_probability(seed: int, kwargs: dict[str, object]) -> None:
    """On stationary noise the share of points with calibrated score >= s is 10^-s within a
    factor of 2 (s = 1, 2), for the full ensemble (Bonferroni over its features) as for one
    feature alone: one threshold means the same on every series."""
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(12_000)]
    _, calibrated = _run(TailSurprise(**kwargs), values)  # type: ignore[arg-type]
    tail = calibrated[2000:]
    for s in (1.0, 2.0):
        share = sum(c >= s for c in tail) / len(tail)
        assert 0.5 < share / 10**-s < 2.0, (s, share)


def test_level_shift_fires_at_onset_then_is_absorbed() -> None:
    """A 10-sigma step alarms within 10 points. The median shift peaks once its recent window
    is all new level (k = 144 points on), after the 100-point refractory period: at most one
    more alarm then, and none once both windows have passed."""
    values = _series(5, 4000, _gauss)
    values = [v + (10.0 if i >= 3000 else 0.0) for i, v in enumerate(values)]
    scores, _ = _run(TailSurprise(), values)
    assert max(scores[800:3000]) < ALERT
    assert max(scores[3000:3010]) >= ALERT
    later = _alarms(scores, 3010)
    assert len(later) <= 1 and all(i < 3000 + 2 * 144 for i in later)


def test_spike_fires_and_leaves_no_trail() -> None:
    values = _series(5, 4000, _gauss)
    values[3000] += 12.0
    scores, _ = _run(TailSurprise(), values)
    assert _alarms(scores) == [3000]


def test_heavy_tailed_noise_rarely_alarms_and_a_shift_still_shows() -> None:
    """Student-t(3) noise: alarms on under 0.2% of points (a Gaussian model would alarm on
    about 1%), and a lasting shift of 20 is reported within 100 points."""
    for seed in (1, 2):
        values = _series(seed, 6000, _student3)
        values = [v + (20.0 if 5000 <= i < 5200 else 0.0) for i, v in enumerate(values)]
        scores, _ = _run(TailSurprise(), values)
        false = [i for i in _alarms(scores) if not 5000 <= i < 5300]
        assert len(false) < 0.002 * 5000, false
        assert max(scores[5000:5100]) >= ALERT


def test_sparse_counts_single_events_are_not_alarms_bursts_are() -> None:
    rng = random.Random(5)
    values = [_poisson(rng, 0.05) for _ in range(4000)]
    values[3500] = 30.0
    scores, _ = _run(TailSurprise(), values)
    singles = [s for i, s in enumerate(scores[800:3500], 800) if values[i] == 1.0]
    assert singles and max(singles) < 2.0
    assert scores[3500] >= ALERT


def test_count_floor_is_the_poisson_deviation_of_the_forecast() -> None:
    """For counts the scale is at least sqrt(forecast); one non-integer value turns it off."""
    det = RobustResidual()
    for i in range(400):
        det.learn_one(_x(i, 100.0))  # a constant count: no spread at all
    assert det.z_one(_x(400, 130.0)) == pytest.approx(3.0)  # (130 - 100) / sqrt(100)
    det.learn_one(_x(401, 100.5))
    assert det.z_one(_x(402, 130.0)) > 1e3


def test_noise_regime_change_raises_at_most_one_alarm() -> None:
    values = _series(5, 6000, _gauss)
    values = [_daily(i) + 3.0 * (v - _daily(i)) if i >= 3000 else v for i, v in enumerate(values)]
    scores, _ = _run(TailSurprise(), values)
    assert len(_alarms(scores)) <= 1
    assert max(scores[4500:]) < ALERT  # the noisier regime is the new normal


def test_local_scale_floor_follows_a_noisier_regime() -> None:
    """With ``local_scale_window`` the residual scale is at least the recent spread: after the
    noise triples, the z of a typical point falls back within the window."""
    values = _series(7, 3000, _gauss)
    values = [_daily(i) + 3.0 * (v - _daily(i)) if i >= 2000 else v for i, v in enumerate(values)]
    plain, local = RobustResidual(), RobustResidual(local_scale_window=64)
    for i, v in enumerate(values[:2200]):
        plain.learn_one(_x(i, v))
        local.learn_one(_x(i, v))
    probe = _x(2200, _daily(2200) + 3.0)  # a 1-sigma point of the new regime
    assert local.z_one(probe) < 0.5 * plain.z_one(probe)


def test_registered_as_tail_surprise() -> None:
    det = build_detector("tail_surprise", {"hold": 50, "local_scale_window": 128})
    inner = det.detector  # type: ignore[attr-defined]
    assert isinstance(inner, TailSurprise)
    assert (inner.hold, inner.local_scale_window, inner.shift_window) == (50, 128, 144)
    with pytest.raises(ValueError, match="slow_level_window"):
        build_detector("tail_surprise", {"slow_level_window": 48})
