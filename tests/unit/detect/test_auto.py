"""`auto` (issue 12 item 3): the model from the value type, constants from the window, the
threshold from a prior the series' history corrects, one knob; weekly shape of the seasonal
baseline."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest

from stream_guard.config.rules import DetectorSpec, MetricRule
from stream_guard.detect.auto import WARNING, AutoDetector, PriorTail, scan_horizons
from stream_guard.detect.base import score_stream
from stream_guard.detect.rate import RateTest
from stream_guard.detect.registry import build_detector
from stream_guard.detect.seasonal import SeasonalBaseline

WINDOW = 900.0
PER_DAY = 96


def _orders(days: int, seed: int, factor: dict[int, float] | None = None,
            weekend: float = 1.0, per_window: float = 400.0) -> list[dict[str, float]]:
    """A GMV-like sum: Poisson orders x lognormal amounts, a daily cycle, `weekend` on days 5
    and 6 of each week; `factor` multiplies the order rate of chosen windows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(days * PER_DAY):
        hour = (i % PER_DAY) / 4
        cycle = math.exp(0.6 * math.cos(2 * math.pi * (hour - 18.5) / 24))
        week = weekend if (i // PER_DAY) % 7 in (5, 6) else 1.0
        n = int(rng.poisson(per_window * cycle * week * (factor or {}).get(i, 1.0)))
        value = float(rng.lognormal(math.log(60), 0.7, size=n).sum())
        out.append({"t": i * WINDOW, "value": value, "numerator": value, "denominator": float(n)})
    return out


def _complaints(windows: int, seed: int, factor: dict[int, float] | None = None,
                window: float = 1800.0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(windows):
        den = float(rng.poisson(800))
        num = float(rng.poisson(den * 0.02 * (factor or {}).get(i, 1.0)))
        out.append({"t": i * window, "value": num / den, "numerator": num, "denominator": den})
    return out


def test_the_model_follows_the_value_type() -> None:
    sums = AutoDetector(window=WINDOW)
    score_stream(sums, _orders(days=1, seed=1))
    assert sums.model == "seasonal" and isinstance(sums.inner, SeasonalBaseline)
    assert sums.inner.weekly and sums.inner.horizons == (1, 2, 4, 6, 8, 12)
    rates = AutoDetector(window=1800.0)
    score_stream(rates, _complaints(48, seed=1))
    assert rates.model == "rate" and isinstance(rates.inner, RateTest)
    assert rates.inner.horizons == (1, 2, 4, 6) and rates.inner.min_due > 0
    amounts = AutoDetector(window=1800.0)  # a ratio of amounts (refunded GMV / GMV): no counts
    score_stream(amounts, [{"t": i * 1800.0, "value": 0.05, "numerator": 50.5,
                            "denominator": 1010.0} for i in range(10)])
    assert amounts.model == "seasonal"


def test_points_before_the_type_is_known_are_not_lost() -> None:
    """Windows without events say nothing about the type: they are kept and replayed into the
    model, which warms up exactly as if it had been there from the start."""
    xs = _complaints(40, seed=2)
    quiet = [{"t": -1800.0 * (3 - i), "value": 0.0, "numerator": 0.0, "denominator": 0.0}
             for i in range(3)]
    auto = AutoDetector(window=1800.0)
    score_stream(auto, quiet + xs)
    assert isinstance(auto.inner, RateTest)
    direct = RateTest(**{k: v for k, v in auto.inner._get_params().items()})
    score_stream(direct, quiet + xs)
    x = {"t": 40 * 1800.0, "value": 0.03, "numerator": 24.0, "denominator": 800.0}
    assert auto.inner.expect_one(x) == direct.expect_one(x)


def test_a_15_minute_metric_alerts_from_its_second_day() -> None:
    """Issue 12: auto_seasonal's calibration needed ~2,000 points (recall .14 on four days of a
    15-minute metric). The prior needs none: four days, a 40% drop for two hours on day 3."""
    drop = {i: 0.6 for i in range(2 * PER_DAY + 50, 2 * PER_DAY + 58)}
    scores = score_stream(build_detector("auto", {}, WINDOW), _orders(days=4, seed=3,
                                                                       factor=drop))
    assert max(scores[i] for i in drop) >= 7  # critical
    assert max(s for i, s in enumerate(scores) if i not in drop and i < min(drop)) < 4
    after = [s for i, s in enumerate(scores) if i > max(drop) + 12]
    assert max(after) < 4


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_clean_weeks_raise_nothing(seed: int) -> None:
    scores = score_stream(AutoDetector(window=WINDOW), _orders(days=14, seed=seed,
                                                                 weekend=1.12))
    assert max(scores) < 4


def test_a_rate_jump_is_caught_and_sensitivity_orders_the_scores() -> None:
    jump = {i: 2.0 for i in range(100, 106)}
    xs = _complaints(200, seed=7, factor=jump)
    runs = {s: score_stream(AutoDetector(sensitivity=s, window=1800.0), xs)  # type: ignore[arg-type]
            for s in ("low", "medium", "high")}
    for scores in runs.values():
        assert max(scores[i] for i in jump) >= 7
        assert max(s for i, s in enumerate(scores) if i < 100) < 4
    peak = {s: max(scores[i] for i in jump) for s, scores in runs.items()}
    assert peak["low"] < peak["medium"] < peak["high"]
    # one decade of budget is about half a point of score at 30-minute windows
    assert peak["high"] - peak["medium"] == pytest.approx(math.log10(3), abs=0.01)


def test_history_wider_than_the_model_raises_the_threshold() -> None:
    """A series whose raw scores run wider than the model claims (heavy tails the model does
    not describe) gets a proportionally higher threshold; a narrow one keeps the prior."""
    rng = np.random.default_rng(8)
    narrow, wide = PriorTail(tests=4), PriorTail(tests=4)
    for _ in range(2000):
        narrow.update(abs(float(rng.normal())))
        wide.update(abs(float(rng.standard_t(2))) * 2)
    assert narrow.phi == 1.0
    assert wide.phi > 1.5
    assert wide.surprise(5.0) < narrow.surprise(5.0) - 2


def test_weekly_profile_learns_the_weekend_from_the_second_week() -> None:
    """A weekend 30% below the week: day-level scans see it as a drop the first time (the
    daily profile knows no weekend); with the weekly profile, the second weekend is normal
    while an incident on it is still caught."""
    xs = _orders(days=14, seed=9, weekend=0.7)
    second = range(12 * PER_DAY, 14 * PER_DAY)
    daily = score_stream(SeasonalBaseline(window=WINDOW, horizons=(1, 2, 4, 8)), xs)
    weekly = score_stream(SeasonalBaseline(window=WINDOW, horizons=(1, 2, 4, 8), weekly=True),
                          xs)
    assert max(daily[i] for i in second) > 5
    assert max(weekly[i] for i in second) < 4
    drop = {i: 0.5 for i in range(12 * PER_DAY + 60, 12 * PER_DAY + 66)}
    hit = score_stream(SeasonalBaseline(window=WINDOW, horizons=(1, 2, 4, 8), weekly=True),
                       _orders(days=13, seed=9, weekend=0.7, factor=drop))
    assert max(hit[i] for i in drop) > 7


def test_scan_horizons_cover_three_hours_or_four_windows() -> None:
    assert scan_horizons(300.0)[-1] * 300.0 <= 3 * 3600
    assert scan_horizons(86400.0) == (1, 2, 4)


def test_a_rule_without_detector_is_auto_and_the_knob_is_checked() -> None:
    rule = MetricRule.model_validate({"metric": "orders", "value": "count",
                                      "source": {"topic": "orders"}, "window": "15m"})
    assert rule.detector.type == "auto" and rule.detector.params == {}
    with pytest.raises(ValueError, match="sensitivity: Input should be 'low', 'medium' or"):
        DetectorSpec.model_validate({"type": "auto", "sensitivity": "extreme"})
    det = build_detector("auto", {"sensitivity": "high"}, 1800.0).detector  # type: ignore[attr-defined]
    assert (det.sensitivity, det.window) == ("high", 1800.0)


def test_state_pickles_and_continues() -> None:
    xs = _orders(days=3, seed=10)
    det = AutoDetector(window=WINDOW)
    score_stream(det, xs[:200])
    copy = pickle.loads(pickle.dumps(det))
    assert score_stream(copy, xs[200:]) == score_stream(det, xs[200:])


def test_an_intake_outage_is_a_drop_the_rate_test_sees() -> None:
    """Issue 12 item 6: complaints stop arriving for two hours (an intake outage): with ~16
    complaints due per 30-minute window the drop scores critical within two windows; the
    weeks around it raise nothing either way."""
    outage = {i: 0.0 for i in range(150, 154)}
    scores = score_stream(AutoDetector(window=1800.0), _complaints(300, seed=11, factor=outage))
    assert max(scores[i] for i in (150, 151)) >= 7
    assert max(s for i, s in enumerate(scores) if i not in outage and not 154 <= i < 160) < 4


def test_a_plain_series_gets_tail_surprise_and_scores_its_outage() -> None:
    """One event per window (a gauge read once per window, a series fed from outside): no
    counts to model, so `auto` picks TailSurprise; before, it waited for events and stayed
    at 0 on every point."""
    rng = random.Random(8)
    det = AutoDetector(window=300.0)
    scores = []
    for i in range(3000):
        v = 100 + 30 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 3)
        v = 20.0 if 2500 <= i < 2506 else v
        x = {"t": 300.0 * i, "value": v, "numerator": v, "denominator": 1.0}
        scores.append(det.score_one(x))
        det.learn_one(x)
    assert det.model == "series"
    assert max(scores[1000:2500]) < WARNING < scores[2500]


def test_a_tiny_slice_with_one_order_now_and_then_is_not_a_plain_series() -> None:
    det = AutoDetector(window=900.0)
    for i in range(300):  # 0 or 1 order per window: the run of single events keeps breaking
        n = float(i % 3 == 0)
        x = {"t": 900.0 * i, "value": 40.0 * n, "numerator": 40.0 * n, "denominator": n}
        det.score_one(x)
        det.learn_one(x)
    assert det.model is None


def test_a_plain_series_state_pickles_and_continues() -> None:
    rng = random.Random(3)
    xs = []
    for i in range(1200):
        v = 50 + 10 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 2)
        xs.append({"t": 300.0 * i, "value": v, "numerator": v, "denominator": 1.0})
    det = AutoDetector(window=300.0)
    score_stream(det, xs[:700])
    copy = pickle.loads(pickle.dumps(det))
    assert copy.model == "series"
    assert score_stream(copy, xs[700:]) == score_stream(det, xs[700:])
