"""No single extreme value breaks detection (issue 10).

Two promises, each for what rules actually build:

- arithmetic: whatever a point holds (1e308, inf, NaN, windows summing to 1e300), no detector
  type of the registry raises, scores stay finite and bounded, and nothing non-finite enters a
  model's state;
- statistics: one extreme but valid window costs at most one episode, whether it comes in the
  first few windows, during warm-up or later, and the detector still catches a genuine incident
  afterwards. Checked on every rule shipped in alert_rules/, with its own detector parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from stream_guard.config.rules import MetricRule
from stream_guard.detect.base import Detector, Features
from stream_guard.detect.guard import MAX_SCORE, Guarded
from stream_guard.detect.registry import DETECTORS, build_detector

PER_DAY = 96
DAYS = 4
INCIDENT = range(3 * PER_DAY + 40, 3 * PER_DAY + 48)  # day 3, 8 windows
SEEDS = (1, 2, 3)
# Where the extreme window falls: the very first windows, mid-warm-up, after warm-up.
SPIKES = (0, 5, 50, 150)


def _series(kind: str, seed: int, spike: tuple[int, float] | None = None) -> list[Features]:
    """Four days of a daily cycle, 96 windows a day, seeded; an incident on day 3 (a 50% drop
    of the value for `seasonal`, a 2.5x rate for `rate`), and at `spike` = (window, factor) one
    extreme window (the value, or the rate's numerator, times factor; factor inf means 1e308)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(DAYS * PER_DAY):
        cycle = 1.0 + 0.5 * math.sin(2 * math.pi * i / PER_DAY)
        den = float(rng.poisson(1000 * cycle))
        incident = i in INCIDENT
        if kind == "seasonal":
            num = float(rng.normal(75 * den, 60 * math.sqrt(den))) * (0.5 if incident else 1.0)
        else:
            num = float(rng.poisson(den * 0.03 * (2.5 if incident else 1.0)))
        if spike is not None and spike[0] == i:
            num = 1e308 if math.isinf(spike[1]) else num * spike[1]
        value = num if kind == "seasonal" else num / den
        out.append({"t": 1_772_409_600.0 + 900.0 * i, "value": value, "numerator": num,
                    "denominator": den})
    return out


def _flags(rule: MetricRule, det: Detector, xs: list[Features]) -> list[bool]:
    """Which windows the engine would call anomalous (score, expectation, direction)."""
    flags = []
    for x in xs:
        score, expected = det.score_one(x), det.expect_one(x)
        det.learn_one(x)
        assert math.isfinite(score) and score >= 0.0  # bounded too behind the guard, see below
        direction = "up" if expected is None or x["value"] >= expected else "down"
        flags.append(expected is not None and score >= rule.alert.severity.warning
                     and rule.direction in ("both", direction))
    return flags


def _runs(flags: list[bool]) -> int:
    """Number of separate stretches of anomalous windows (an episode each, at best)."""
    return sum(f and (i == 0 or not flags[i - 1]) for i, f in enumerate(flags))


def _build(rule: MetricRule) -> Detector:
    return build_detector(rule.detector.type, rule.detector.params, 900.0)


@pytest.fixture(params=["gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate"])
def rule(request: pytest.FixtureRequest, rules: list[MetricRule]) -> MetricRule:
    return next(r for r in rules if r.metric == request.param)


def test_every_shipped_detector_type_is_covered(rules: list[MetricRule]) -> None:
    shipped = {r.metric for r in rules}
    assert shipped == {"gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate"}
    assert {r.detector.type for r in rules} == {"seasonal", "rate", "auto"}


@pytest.mark.parametrize("seed", SEEDS)
def test_clean_series_alerts_only_on_the_incident(rule: MetricRule, seed: int) -> None:
    flags = _flags(rule, _build(rule), _series(rule.detector.type, seed))
    assert not any(flags[: INCIDENT.start])
    assert any(flags[i] for i in INCIDENT)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("at", SPIKES)
@pytest.mark.parametrize("factor", [1e6, math.inf])
def test_one_extreme_window_costs_at_most_one_episode(
    rule: MetricRule, seed: int, at: int, factor: float
) -> None:
    """x1e6 (a 1e12 order in a window of 1e6) or 1e308 in one window: before the incident, at
    most one stretch of alerts (the spike itself, and only once warm-up is over), and the
    incident on day 3 is still caught."""
    flags = _flags(rule, _build(rule), _series(rule.detector.type, seed, (at, factor)))
    assert _runs(flags[: INCIDENT.start]) <= 1
    assert not any(flags[: at])
    assert any(flags[i] for i in INCIDENT)


@pytest.mark.parametrize("at", SPIKES)
def test_the_shipped_detectors_need_no_guard_for_it(rule: MetricRule, at: int) -> None:
    """The same without `Guarded`: the detectors' own learning bounds a 1e308 window."""
    bare = _build(rule)
    assert isinstance(bare, Guarded)
    flags = _flags(rule, bare.detector, _series(rule.detector.type, 1, (at, math.inf)))
    assert _runs(flags[: INCIDENT.start]) <= 1
    assert any(flags[i] for i in INCIDENT)


# ---------------------------------------------------------------------------------------------
# Arithmetic: every registered detector type, as rules build it.

ODD = [1e308, -1e308, math.inf, -math.inf, math.nan, 0.0, -0.0, 5e-324, 1e300]


def _hostile_stream(seed: int = 4) -> list[Features]:
    """Hourly values with a daily cycle; every 37th point odd in one feature, and a stretch of
    windows of 1e300 each (their sums overflow a float)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1200):
        v = 100.0 + 30 * math.sin(2 * math.pi * i / 24) + float(rng.normal(0, 3))
        x = {"t": 3600.0 * i, "value": v, "numerator": v, "denominator": 50.0}
        if i % 37 == 36:
            x[("value", "numerator", "denominator")[i % 3]] = ODD[i % len(ODD)]
        if 600 <= i < 612:
            x["value"] = x["numerator"] = 1e300
        out.append(x)
    return out


def _numbers(obj: Any, seen: set[int] | None = None) -> Iterator[float]:
    """Every float reachable from `obj` (attributes, containers, packed arrays)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, float):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v, seen)
    elif isinstance(obj, list | tuple | set | frozenset) or type(obj).__name__ == "deque":
        for v in obj:
            yield from _numbers(v, seen)
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield from map(float, obj.ravel())
    elif hasattr(obj, "__dict__") or hasattr(obj, "__slots__"):
        names = list(getattr(obj, "__dict__", {})) + list(getattr(obj, "__slots__", ()))
        for name in names:
            yield from _numbers(getattr(obj, name, None), seen)


@pytest.mark.parametrize("kind", sorted(DETECTORS))
def test_no_input_breaks_any_detector_type(kind: str) -> None:
    params: dict[str, Any] = {"upper": 500.0} if kind == "threshold" else {}
    det = build_detector(kind, params, 3600.0)
    for x in _hostile_stream():
        score, expected = det.score_one(x), det.expect_one(x)
        assert math.isfinite(score) and 0.0 <= score <= MAX_SCORE, (kind, x, score)
        assert expected is None or math.isfinite(expected), (kind, x, expected)
        det.learn_one(x)
    state = list(_numbers(det))
    assert state and all(math.isfinite(v) for v in state), kind


def test_an_overflowing_window_scores_high_and_is_not_learned() -> None:
    det = build_detector("seasonal", {}, 3600.0)
    for i in range(72):
        x = {"t": 3600.0 * i, "value": 100.0, "numerator": 100.0, "denominator": 10.0}
        det.score_one(x)
        det.learn_one(x)
    odd = {"t": 72 * 3600.0, "value": math.inf, "numerator": math.inf, "denominator": 10.0}
    before = repr(sorted(vars(det.detector).items()))  # type: ignore[attr-defined]
    assert det.score_one(odd) == MAX_SCORE
    det.learn_one(odd)
    assert repr(sorted(vars(det.detector).items())) == before  # type: ignore[attr-defined]
    assert det.score_one(dict(odd, value=math.nan)) == 0.0
    assert det.expect_one(dict(odd, value=math.nan)) is None
