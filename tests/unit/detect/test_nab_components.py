"""Behaviour of the building blocks: rolling quantiles, period detection, tail calibration,
refractory damping, and the AutoSeasonal composition on shapes NAB is made of."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from stream_guard.detect.auto_seasonal import AutoSeasonal
from stream_guard.detect.base import DetectorBase, Features
from stream_guard.detect.ensemble import CalibratedEnsemble
from stream_guard.detect.median_shift import MedianShift
from stream_guard.detect.period import detect_period
from stream_guard.detect.refractory import Refractory
from stream_guard.detect.rolling import RollingQuantiles
from stream_guard.detect.seasonal_residual import SeasonalResidual
from stream_guard.detect.tail import MAX_SURPRISE, TailCalibrator


def _x(i: int, v: float, step: float = 3600.0) -> Features:
    return {"t": step * i, "value": v, "numerator": v, "denominator": 1.0}


def test_rolling_quantiles_match_numpy_after_evictions() -> None:
    rng = random.Random(5)
    rq = RollingQuantiles(size=101)
    values = [rng.expovariate(1.0) for _ in range(500)]
    for v in values:
        rq.update(v)
    window = np.array(values[-101:])
    for q in (0.0, 0.25, 0.5, 0.9, 1.0):
        assert rq.quantile(q) == pytest.approx(float(np.quantile(window, q)))
    assert rq.fraction_at_least(1.0) == pytest.approx(float((window >= 1.0).mean()))


def test_period_prefers_weekly_cycle_when_weekends_differ() -> None:
    rng = random.Random(2)
    hourly = [
        (0.4 if (i // 24) % 7 >= 5 else 1.0) * (10 + 5 * math.sin(2 * math.pi * i / 24))
        + rng.gauss(0, 0.3)
        for i in range(24 * 7 * 4)
    ]
    assert detect_period(hourly, min_lag=4, max_lag=400, min_acf=0.5) == 168
    noise = [rng.gauss(0, 1) for _ in range(1000)]
    assert detect_period(noise, min_lag=4, max_lag=400, min_acf=0.5) is None


def test_tail_calibration_is_monotone_and_extrapolates_past_the_maximum() -> None:
    rng = random.Random(9)
    cal = TailCalibrator(window=2000, tail_fraction=0.05, min_count=200)
    for _ in range(2000):
        cal.update(abs(rng.gauss(0, 1)))
    grid = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0]
    surprises = [cal.surprise(s) for s in grid]
    assert surprises == sorted(surprises)
    assert surprises[-1] > surprises[-2] > math.log10(2001)  # beyond any rank-based value
    assert cal.surprise(1e9) == MAX_SURPRISE


def test_tail_calibration_of_a_constant_history_is_finite() -> None:
    cal = TailCalibrator(window=500, tail_fraction=0.05, min_count=100)
    for _ in range(500):
        cal.update(0.0)
    assert cal.surprise(0.0) == 0.0
    assert 0 < cal.surprise(0.5) < MAX_SURPRISE


class _Echo(DetectorBase):
    """Scores a point by its value: lets a test dictate the inner scores."""

    def score_one(self, x: Features) -> float:
        return x["value"]

    def expect_one(self, x: Features) -> float | None:
        return 0.0

    def learn_one(self, x: Features) -> None:
        return None


def test_refractory_fires_once_per_episode_but_lets_worse_through() -> None:
    det = Refractory(_Echo(), level=4.0, hold=3, damping=0.5)
    out = []
    for i, v in enumerate([5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 5.0, 9.0]):
        out.append(det.score_one(_x(i, v)))
        det.learn_one(_x(i, v))
    # Fires at 0, the next 3 points are damped; index 7 fires again after the hold, and 9 exceeds
    # that episode's peak so it passes undamped.
    assert out == [5.0, 2.5, 2.5, 0.5, 1.0, 1.0, 1.0, 5.0, 9.0]


def test_refractory_margin_counts_from_the_episode_peak_so_a_creeping_score_fires_once() -> None:
    creeping = [4.0, 5.5, 7.0, 8.5, 10.0]  # each step under the margin, the total far over it
    outs = {}
    for follow in (True, False):
        det = Refractory(_Echo(), level=4.0, hold=10, damping=0.5, margin=2.0, follow_peak=follow)
        outs[follow] = []
        for i, v in enumerate(creeping):
            outs[follow].append(det.score_one(_x(i, v)))
            det.learn_one(_x(i, v))
    assert outs[True] == [4.0, 2.75, 3.5, 4.25, 5.0]  # one alert at level 4
    assert outs[False][2] == 7.0  # measured from the opening score, the climb fires again



def _echoed(det: Refractory, values: list[float]) -> list[float]:
    out = []
    for i, v in enumerate(values):
        out.append(det.score_one(_x(i, v)))
        det.learn_one(_x(i, v))
    return out


def test_run_rule_reports_a_run_under_the_level_once_and_a_ramp_as_it_climbs() -> None:
    # Scores creeping along between an alert threshold (3.3) and the level (3.5): without the
    # rule each of them fires; with it the run passes at 3.33, then only what is 0.3 rarer.
    run = [2.9, 3.33, 3.36, 3.4, 3.35, 3.45, 2.0, 3.34]
    plain = _echoed(Refractory(_Echo(), level=3.5, damping=0.25), run)
    ruled = _echoed(Refractory(_Echo(), level=3.5, damping=0.25, run_level=2.5), run)
    assert sum(z >= 3.3 for z in plain) == 6
    assert ruled[:2] == [2.9, 3.33] and max(ruled[2:6]) < 3.3  # 3.36-3.45 < 3.33 + 0.3
    assert ruled[7] == 3.34  # 2.0 ended the run: a new one reports again
    ramp = _echoed(Refractory(_Echo(), level=3.5, damping=0.25, run_level=2.5),
                   [2.6, 2.8, 3.0, 3.2, 3.4])
    assert ramp == [2.6, 0.7, 3.0, 0.8, 3.4]


def test_run_rule_leaves_scores_at_the_level_alone() -> None:
    values = [3.4, 3.6, 9.0, 1.0]
    assert _echoed(Refractory(_Echo(), level=3.5, damping=0.25, run_level=2.5), values) == \
        _echoed(Refractory(_Echo(), level=3.5, damping=0.25), values)


def test_refractory_saved_before_the_run_rule_still_loads() -> None:
    det = Refractory(_Echo(), level=3.5)
    state = dict(det.__dict__)
    for name in ("run_level", "run_margin", "_record"):
        del state[name]
    old = Refractory.__new__(Refractory)
    old.__setstate__(state)
    assert _echoed(old, [3.4, 3.45, 5.0, 5.0]) == [3.4, 3.45, 5.0, 2.5]  # no run rule

def test_seasonal_residual_finds_the_season_and_ignores_its_edges() -> None:
    # A noiseless daily square wave (NAB's art_daily_perfect_square_wave): the daily jumps are
    # normal once the period is known, so scores stay at zero; a missing "day" then stands out.
    det = SeasonalResidual()
    scores = []
    for i in range(288 * 8):
        v = 80.0 if (i % 288) >= 144 else 20.0
        v = 20.0 if 288 * 7 + 144 <= i < 288 * 7 + 160 else v
        scores.append(det.score_one(_x(i, v, step=300.0)))
        det.learn_one(_x(i, v, step=300.0))
    assert det.period == 288
    assert max(scores[288 * 3 : 288 * 7 + 144]) < 1.0
    assert scores[288 * 7 + 144] > 10


def test_auto_seasonal_flags_a_level_shift_early_then_goes_quiet() -> None:
    rng = random.Random(4)
    det = AutoSeasonal()
    scores = []
    for i in range(3000):
        v = 100 + 20 * math.sin(2 * math.pi * i / 48) + rng.gauss(0, 2) + (15 if i >= 2500 else 0)
        scores.append(det.score_one(_x(i, v, step=1800.0)))
        det.learn_one(_x(i, v, step=1800.0))
    assert det.period == 48
    assert max(scores[1000:2500]) < 4.0
    fired = [i for i in range(2500, 3000) if scores[i] >= 4.0]
    assert fired and fired[0] < 2510  # within 5 hours
    # One burst at the onset (growing as the shift accumulates), not one alert per point after.
    assert fired[-1] < 2520


def test_tail_clip_keeps_a_past_burst_from_hiding_the_next_one() -> None:
    rng = random.Random(12)
    plain = TailCalibrator(window=2000, tail_fraction=0.05, min_count=100)
    clipped = TailCalibrator(window=2000, tail_fraction=0.05, min_count=100, clip=3.0)
    for i in range(2000):
        s = 8.0 if 1000 <= i < 1010 else abs(rng.gauss(0, 1))  # an incident: 0.5% of the window
        plain.update(s)
        clipped.update(s)
    assert plain.surprise(8.0) < 4.5  # one incident taught the plain reference that 8 is common
    assert clipped.surprise(8.0) > 6.0
    assert clipped.surprise(1.0) == pytest.approx(plain.surprise(1.0))  # the body is unchanged


def test_ensemble_reads_each_member_at_its_own_horizons() -> None:
    # The slow member is read over 48 points only: a one-point spike is the fast member's
    # business, and the slow one must neither see it nor cost a Bonferroni share at horizon 1.
    rng = random.Random(8)
    members = [SeasonalResidual(warmup=50), SeasonalResidual(warmup=50, level_window=48)]
    ens = CalibratedEnsemble(members, horizons=[(1, 8), (48,)], min_count=100)
    for i in range(1200):
        ens.learn_one(_x(i, rng.gauss(0, 1)))
    (spike_1, _), (slow_48,) = ens.feature_surprises(_x(1200, 15.0))
    assert spike_1 > 6 and slow_48 < 2
    with pytest.raises(ValueError, match="one non-empty horizon list per member"):
        CalibratedEnsemble(members, horizons=[(1, 8)])


def test_rolling_quantile_after_matches_an_update_without_making_it() -> None:
    rng = random.Random(0)
    for size in (1, 2, 5, 8):
        rq = RollingQuantiles(size)
        for _ in range(200):
            x = float(rng.randint(0, 6))  # many ties
            updated = pickle.loads(pickle.dumps(rq))
            updated.update(x)
            for q in (0.0, 0.25, 0.5, 0.75, 1.0):
                assert rq.quantile_after(x, q) == pytest.approx(updated.quantile(q))
            rq.update(x)


def test_rolling_quantiles_pickle_keeps_the_window_and_its_order() -> None:
    rq = RollingQuantiles(4)
    for v in [3.0, 1.0, 2.0, 5.0, 4.0]:
        rq.update(v)
    back = pickle.loads(pickle.dumps(rq))
    back.update(0.0)  # evicts 1.0, the oldest kept
    assert back.first() == 2.0 and back.quantile(0.0) == 0.0 and back.quantile(1.0) == 5.0


def test_median_shift_ignores_a_lone_spike_but_sees_a_slow_slide() -> None:
    rng = random.Random(9)
    det = MedianShift(k=64)
    zs = []
    for i in range(1400):
        v = rng.gauss(0, 1) + (50.0 if i == 800 else 0.0) - 8.0 * min(max(i - 1100, 0), 100) / 100
        x = {"t": 60.0 * i, "value": v, "numerator": v, "denominator": 1.0}
        zs.append(det.z_one(x))
        det.learn_one(x)
    assert max(abs(z) for z in zs[790:900]) < 4  # the spike moves neither median
    assert min(zs[1100:1400]) < -8  # 0.08 sigma a point, yet 8 sigmas in all: far out



def _integer_speeds(det: MedianShift, n: int, halve_from: int | None = None) -> list[float]:
    """Integer speeds of sd 3 around 62 (a loop detector's), halved from ``halve_from``."""
    rng = random.Random(4)
    zs = []
    for i in range(n):
        v = float(round(rng.gauss(62.0, 3.0) * (0.5 if halve_from and i >= halve_from else 1)))
        zs.append(det.z_one(_x(i, v, 300.0)))
        det.learn_one(_x(i, v, 300.0))
    return zs


def test_median_shift_on_integers_is_not_moved_by_one_unit() -> None:
    # Medians of integers tie: most differences are exactly 0, their spread is 0. A median
    # moving by one unit was a z of millions; the series' resolution (1) floors the scale.
    zs = _integer_speeds(MedianShift(k=144), 3000)
    assert max(abs(z) for z in zs) <= 2.0


def test_median_shift_on_integers_still_sees_a_halving() -> None:
    zs = _integer_speeds(MedianShift(k=144), 3000, halve_from=2500)
    assert min(zs[2500:]) < -20  # 31 units down: far beyond the resolution


def test_median_shift_saved_before_the_resolution_floor_still_loads() -> None:
    det = MedianShift(k=16)
    _integer_speeds(det, 400)
    state = dict(det.__dict__)
    del state["_resolution"], state["_previous"]
    old = MedianShift.__new__(MedianShift)
    old.__setstate__(state)
    old.learn_one(_x(400, 61.0))  # it keeps learning, and finds the resolution again
    old.learn_one(_x(401, 62.0))
    assert old._resolution == 1.0

def _spiky_history(cal: TailCalibrator, spikes: int, seed: int = 9) -> None:
    """2,000 half-normal scores, `spikes` of them replaced by 40-60 (far beyond the clip)."""
    rng = random.Random(seed)
    at = set(rng.sample(range(2000), spikes))
    for i in range(2000):
        cal.update(rng.uniform(40.0, 60.0) if i in at else abs(rng.gauss(0.0, 1.0)))


def test_trust_count_makes_routine_spikes_no_rarer_than_their_frequency() -> None:
    routine = TailCalibrator(2000, 0.05, 100, clip=3.0, trust_count=20)
    _spiky_history(routine, spikes=20)  # 1% of the points: routine
    clipped_only = TailCalibrator(2000, 0.05, 100, clip=3.0)
    _spiky_history(clipped_only, spikes=20)
    # 20 of 2,000 scores reached 40: at most the surprise -log10(21 / 2001) = 1.98
    assert routine.surprise(40.0) <= 1.98
    assert clipped_only.surprise(40.0) > 5.0  # each spike looks new again


def test_trust_count_leaves_a_rare_incident_extrapolated() -> None:
    cal = TailCalibrator(2000, 0.05, 100, clip=3.0, trust_count=20)
    _spiky_history(cal, spikes=5)  # five points of incident: fewer than the trust count
    assert cal.surprise(40.0) == MAX_SURPRISE


def test_trust_count_forgets_clipped_scores_that_left_the_window() -> None:
    cal = TailCalibrator(500, 0.05, 100, clip=3.0, trust_count=20)
    rng = random.Random(2)
    for i in range(500):
        cal.update(50.0 if i % 10 == 0 and i >= 200 else abs(rng.gauss(0.0, 1.0)))
    assert cal.surprise(50.0) < 2.0  # 30 spikes in the window
    for _ in range(500):
        cal.update(abs(rng.gauss(0.0, 1.0)))
    assert cal.surprise(50.0) == MAX_SURPRISE


def test_tail_calibrator_saved_before_trust_count_still_loads() -> None:
    cal = TailCalibrator(200, 0.05, 50, clip=3.0)
    for i in range(300):
        cal.update(float(i % 7))
    state = dict(cal.__dict__)
    for name in ("trust_count", "_clipped", "_clipped_sorted", "_updates"):
        del state[name]
    old = TailCalibrator.__new__(TailCalibrator)
    old.__setstate__(state)
    assert old.surprise(9.0) == cal.surprise(9.0)
    old.update(9.0)  # and it keeps learning
