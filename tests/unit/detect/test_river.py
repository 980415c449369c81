"""River detectors for real (issue 12 item 4): the README's override runs, parameters are
checked together at load, and the forecasters never raise while they warm up."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from stream_guard.backtest.run import apply_detector_overrides, parse_detector_override
from stream_guard.config.rules import DetectorSpec, load_rules
from stream_guard.config.topics import load_topics
from stream_guard.detect.registry import build_detector, validate_params
from stream_guard.errors import ConfigError

REPO = Path(__file__).parents[3]


def _series(n: int, window: float = 900.0) -> list[dict[str, float]]:
    day = 86400.0 / window
    rng = random.Random(5)
    return [{"t": i * window,
             "value": 100.0 + 40.0 * math.sin(2 * math.pi * i / day) + rng.gauss(0.0, 3.0),
             "numerator": 1.0, "denominator": 1.0} for i in range(n)]


@pytest.mark.parametrize("model", ["holtwinters", "holtwinters_mul", "snarimax"])
def test_readme_override_runs_from_the_first_window(model: str) -> None:
    """`--detector gmv=river_forecast,seasonality=96` crashed with an IndexError (the
    forecaster asked before its season was initialised): every window is now scored."""
    option = f"gmv=river_forecast,seasonality=96,model={model}"
    rules = apply_detector_overrides(load_rules(REPO / "alert_rules", load_topics()), [option])
    spec = next(r.detector for r in rules if r.metric == "gmv")
    det = build_detector(spec.type, spec.params, 900.0)
    scores, expected = [], []
    for x in _series(96 * 4):
        scores.append(det.score_one(x))
        expected.append(det.expect_one(x))
        det.learn_one(x)
    assert all(e is None for e in expected[:120])  # warm-up: a season and a quarter
    assert all(e is not None for e in expected[120:])
    assert max(scores[120:]) < 4.5  # a noisy daily cycle raises nothing
    spike = {**_series(96 * 4 + 1)[-1]}
    spike["value"] *= 3
    assert det.score_one(spike) > 4


def test_warmup_shorter_than_a_season_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match=r"warmup: 48 windows is shorter than seasonality \(96\)"):
        validate_params("river_forecast", {"seasonality": 96, "warmup": 48})
    with pytest.raises(ValueError, match="warmup: give `seasonality` too"):
        DetectorSpec.model_validate({"type": "river_forecast", "warmup": 100})
    with pytest.raises(ConfigError, match="warmup: 48 windows is shorter"):
        parse_detector_override("gmv=river_forecast,seasonality=96,warmup=48")
    with pytest.raises(ValueError, match="seasonality: must be >= 1"):
        validate_params("river_forecast", {"seasonality": 0})
    assert validate_params("river_forecast", {"seasonality": 96, "warmup": 96})["warmup"] == 96


def test_default_season_is_a_day_of_the_rule_window() -> None:
    det = build_detector("river_forecast", {}, window_s=1800.0).detector  # type: ignore[attr-defined]
    assert (det.seasonality, det.warmup) == (48, 60)


@pytest.mark.parametrize("model", ["holtwinters", "holtwinters_mul", "snarimax"])
def test_a_slice_without_events_in_its_first_season_does_not_crash(model: str) -> None:
    """River's Holt-Winters divided by the mean of the first season (ZeroDivisionError on a
    rate slice with no finding in its first day: found by the business ablation)."""
    det = build_detector("river_forecast", {"model": model, "seasonality": 8}, 3600.0)
    for i in range(40):
        x = {"t": i * 3600.0, "value": 0.0 if i < 20 else 0.05, "numerator": 0.0,
             "denominator": 10.0}
        det.score_one(x)
        det.expect_one(x)
        det.learn_one(x)
