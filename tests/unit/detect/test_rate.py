"""RateTest on Poisson counts: silent on small slices and noise, loud on sustained rate jumps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from stream_guard.detect.base import score_stream
from stream_guard.detect.rate import RateTest

RATE = 0.02
THRESHOLD = 4.0


def _windows(n: int, den: float, seed: int, factor: dict[int, float] | None = None
             ) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        d = float(rng.poisson(den))
        num = float(rng.poisson(d * RATE * (factor or {}).get(i, 1.0)))
        out.append({"t": i * 1800.0, "value": num / d if d else 0.0, "numerator": num,
                    "denominator": d})
    return out


def test_pure_noise_rarely_reaches_the_warning_level() -> None:
    """2,000 windows scanned over four horizons: a false alarm at most once (p < 1e-4)."""
    alarms = 0
    for seed in range(5):
        scores = score_stream(RateTest(min_denominator=50, horizons=(1, 2, 4, 6)),
                         _windows(400, 250.0, seed))
        alarms += sum(s >= THRESHOLD for s in scores)
    assert alarms <= 1


def test_tiny_slices_never_score() -> None:
    det = RateTest(min_denominator=50, min_excess=5, horizons=(1, 2, 4))
    score_stream(det, _windows(100, 250.0, seed=1))
    assert det.score_one({"t": 0.0, "value": 0.5, "numerator": 2.0, "denominator": 4.0}) == 0.0
    # below min_excess even over the horizon: 3 extra findings are nothing to act on
    assert det.score_one({"t": 0.0, "value": 0.04, "numerator": 8.0, "denominator": 200.0}) == 0.0


def test_a_rate_jump_over_four_windows_is_caught_on_its_total() -> None:
    jump = {i: 2.2 for i in range(300, 304)}
    xs = _windows(310, 250.0, seed=2, factor=jump)  # ~5 findings due per window
    single = score_stream(RateTest(min_denominator=50, horizons=(1,)), xs)
    scanned = score_stream(RateTest(min_denominator=50, horizons=(1, 2, 4)), xs)
    assert max(single[300:304]) < THRESHOLD
    assert max(scanned[300:304]) >= THRESHOLD


def test_a_lasting_rate_shift_is_absorbed() -> None:
    shift = {i: 2.5 for i in range(200, 400)}
    scores = score_stream(RateTest(min_denominator=50, horizons=(1, 2), absorb_after=6),
                     _windows(400, 400.0, seed=3, factor=shift))
    flagged = [i for i, s in enumerate(scores) if s >= THRESHOLD]
    assert flagged and flagged[0] <= 202
    assert len([i for i in flagged if i >= 230]) <= 3


def test_horizons_must_be_whole_windows() -> None:
    with pytest.raises(ValueError, match="horizons"):
        RateTest(horizons=(0, 2))


def test_a_quiet_window_inside_a_jump_adds_to_the_scan() -> None:
    """min_denominator applies to a horizon's total: a night half-hour with 40 listings (below
    50) inside a tripled rate still scores on the sum with its neighbours."""
    det = RateTest(min_denominator=50, min_excess=5, horizons=(1, 2, 4))
    score_stream(det, _windows(200, 100.0, seed=4))
    jump = [{"t": 0.0, "value": n / d, "numerator": n, "denominator": d}
            for n, d in ((9.0, 100.0), (9.0, 100.0), (6.0, 40.0))]
    scores = score_stream(det, jump)
    assert scores[-1] >= THRESHOLD


def test_the_rate_holds_while_a_jump_builds_up() -> None:
    """Windows beyond `hold` are not learned, so the first windows of a jump (not alarming
    yet) do not raise the usual rate."""
    det = RateTest(min_denominator=50, horizons=(1, 2, 4), hold=2.0)
    score_stream(det, _windows(200, 250.0, seed=5))
    before = det.expect_one({})
    score_stream(det, [{"t": 0.0, "value": 0.048, "numerator": 12.0, "denominator": 250.0}] * 2)
    assert det.expect_one({}) == before


def _drop(n: int, seed: int, num_factor: dict[int, float], den_factor: dict[int, float]
          ) -> list[dict[str, float]]:
    """Windows of 1,000 orders (20 complaints due), with the numerator's or the denominator's
    own process multiplied in some windows: an outage thins complaints, a flood adds orders
    nobody complains about."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        orders = float(rng.poisson(1000.0))
        num = float(rng.poisson(orders * RATE * num_factor.get(i, 1.0)))
        den = orders * den_factor.get(i, 1.0)
        out.append({"t": i * 1800.0, "value": num / den, "numerator": num, "denominator": den})
    return out


GUARDED = {"min_denominator": 50.0, "horizons": (1, 2, 4), "window": 1800.0}
INCIDENT = range(300, 304)  # day 7 of half-hour windows: every phase seen


def test_an_intake_outage_is_a_numerator_outage() -> None:
    det = RateTest(**GUARDED)
    scores = score_stream(det, _drop(300, seed=6, num_factor={}, den_factor={}))
    outage = _drop(304, seed=7, num_factor=dict.fromkeys(INCIDENT, 0.1), den_factor={})[300:]
    causes = []
    for x in outage:
        scores.append(det.score_one(x))
        causes.append(det.cause)
        det.learn_one(x)
    assert max(scores[:300]) < THRESHOLD
    assert min(scores[300:]) >= THRESHOLD and max(scores[300:]) >= 7
    assert causes[-1] is not None and causes[-1].summary.startswith("numerator outage: ")


def test_an_order_flood_is_no_drop_of_the_rate() -> None:
    """Orders x3 for two hours, complaints at their count: the rate falls to a third, which the
    rate test alone scores far beyond critical; the numerator is at its usual count, so the
    guarded test does not call it a drop."""
    flood = dict.fromkeys(INCIDENT, 3.0)
    xs = _drop(310, seed=8, num_factor={}, den_factor=flood)
    det = RateTest(**GUARDED)
    scores = score_stream(det, xs)
    assert all(x["value"] < RATE / 2 for x in xs[300:304])
    assert max(scores) < THRESHOLD
    assert det.expect_one({}) == pytest.approx(RATE, rel=0.1)  # not learned as a lower rate


def test_a_drop_before_its_phase_was_seen_scores_nothing() -> None:
    """The guard needs the usual denominator at this time of day: on the first day, a drop
    scores 0 (a rise still scores)."""
    det = RateTest(min_denominator=50.0, warmup=4, horizons=(1,), window=1800.0)
    score_stream(det, _drop(20, seed=9, num_factor={}, den_factor={}))
    low = {"t": 20 * 1800.0, "value": 0.0, "numerator": 0.0, "denominator": 1000.0}
    high = {"t": 20 * 1800.0, "value": 0.08, "numerator": 80.0, "denominator": 1000.0}
    assert det.score_one(low) == 0.0 and det.cause is None
    assert det.score_one(high) >= 7


def test_a_detector_pickled_before_the_guard_loads_and_continues() -> None:
    """State saved by the previous version (3 numbers per recent window, no profile, no
    window) loads: the guard starts learning, drops wait for their phase, rises still score."""
    det = RateTest(min_denominator=50.0, horizons=(1, 2, 4))
    score_stream(det, _drop(100, seed=10, num_factor={}, den_factor={}))
    old = dict(det.__dict__)
    for name in ("_profile", "window", "_last_drop"):
        old.pop(name, None)
    old["_recent"].items = [row[:3] for row in old["_recent"].items]
    loaded = RateTest.__new__(RateTest)
    loaded.__setstate__(pickle.loads(pickle.dumps(old)))
    assert all(len(row) == 4 for row in loaded._recent.items)
    rise = {"t": 0.0, "value": 0.08, "numerator": 80.0, "denominator": 1000.0}
    assert loaded.score_one(rise) >= 7
    scores = score_stream(loaded, _drop(200, seed=11, num_factor={}, den_factor={}))
    assert max(scores) < THRESHOLD
