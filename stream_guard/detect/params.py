"""What each detector a rule can name takes, described without importing the detector.

Loading a rule validates its ``detector:`` parameters strictly, but must not import the
detector's module: River costs ~0.6 s and 100 MiB at import and numpy (auto_seasonal's period
search) ~0.1 s, for `stream-guard rules list` that builds no detector. So each detector's
hyper-parameters -- the constructor's parameters, with their annotations and defaults, in order
-- are written out here, next to the import path of its class, which is imported only when a
detector is built (`registry.build_detector`).

The constructor stays the definition: tests/unit/detect/test_lazy_imports.py compares every
description with ``inspect.signature`` and ``get_type_hints`` of the class's ``__init__`` and
fails, naming the detector and the parameter, when they differ. Change a constructor, then
this table.

>>> PARAMS["rate"].params["min_denominator"]
(<class 'float'>, 30.0)
>>> PARAMS["river_hst"].module
'stream_guard.detect.river_adapter'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CONTEXT_PARAMS", "PARAMS", "DetectorParams", "check_forecast_params"]

CONTEXT_PARAMS = frozenset({"window"})
"""Constructor parameters the engine fills from the rule (the window, in seconds)."""


@dataclass(frozen=True)
class DetectorParams:
    """A detector class by import path, and its rule-settable constructor parameters.

    `params` maps each name to ``(annotation, default)`` in signature order (``...`` for a
    parameter without a default); `context` names the `CONTEXT_PARAMS` the constructor takes;
    `check`, if any, checks the parameters together (type-checked and with their defaults) and
    raises ValueError naming the parameter; the constructor runs it too.
    """

    module: str
    name: str
    params: dict[str, tuple[Any, Any]]
    context: frozenset[str] = frozenset()
    check: Callable[[dict[str, Any]], None] | None = None

    def load(self) -> type:
        """The detector class (imports its module: River's for the River detectors)."""
        cls: type = getattr(importlib.import_module(self.module), self.name)
        return cls


_HORIZONS = tuple[int, ...]


def check_forecast_params(params: dict[str, Any]) -> None:
    """Cross-parameter checks of `RiverForecast` (river_adapter.py), at rule load.

    A Holt-Winters forecaster initialises its season from the first `seasonality` values and
    SNARIMAX needs a season of lags: a warm-up shorter than one season would forecast from
    nothing (River raised IndexError there). Without `seasonality` the season is a day of the
    rule's window, which a rule's detector block does not know: a `warmup` then needs an
    explicit `seasonality` to be checked against.

    >>> check_forecast_params({"seasonality": 96, "warmup": 48})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: warmup: 48 windows is shorter than seasonality (96): ... a season to initialise
    >>> check_forecast_params({"seasonality": 96, "warmup": None})  # warmup: two seasons
    """
    seasonality, warmup = params.get("seasonality"), params.get("warmup")
    if seasonality is not None and seasonality < 1:
        raise ValueError(f"seasonality: must be >= 1 window, got {seasonality}")
    if warmup is None:
        return
    if seasonality is None:
        raise ValueError("warmup: give `seasonality` too (the default season, a day of "
                         "windows, is only known with the rule's window)")
    if warmup < seasonality:
        raise ValueError(f"warmup: {warmup} windows is shorter than seasonality "
                         f"({seasonality}): the forecaster needs a season to initialise")

PARAMS: dict[str, DetectorParams] = {
    # The default: model, horizons, guards and threshold read from the series and the window.
    "auto": DetectorParams(
        "stream_guard.detect.auto", "AutoDetector", context=frozenset({"window"}),
        params={"sensitivity": (Literal["low", "medium", "high"], "medium")},
    ),
    "seasonal": DetectorParams(
        "stream_guard.detect.seasonal", "SeasonalBaseline", context=frozenset({"window"}),
        params={
            "period": (float, 86400.0),
            "alpha": (float, 0.05),
            "season_alpha": (float, 0.3),
            "model_error": (float, 0.04),
            "warmup_periods": (int, 1),
            "clip": (float, 3.0),
            "absorb_after": (int, 24),
            "min_count": (float, 0.0),
            "horizons": (_HORIZONS, (1,)),
            "hold": (float, 3.0),
            "weekly": (bool, False),
        },
    ),
    "rate": DetectorParams(
        "stream_guard.detect.rate", "RateTest", context=frozenset({"window"}),
        params={
            "half_life": (float, 48.0),
            "min_denominator": (float, 30.0),
            "min_excess": (float, 3.0),
            "warmup": (int, 12),
            "clip": (float, 3.0),
            "horizons": (_HORIZONS, (1,)),
            "absorb_after": (int, 12),
            "hold": (float, 3.0),
            "min_due": (float, 0.0),
        },
    ),
    "threshold": DetectorParams(
        "stream_guard.detect.threshold", "StaticThreshold",
        params={
            "lower": (float | None, None),
            "upper": (float | None, None),
            "breach_score": (float, 5.0),
        },
    ),
    "river_forecast": DetectorParams(
        "stream_guard.detect.river_adapter", "RiverForecast", context=frozenset({"window"}),
        params={
            "model": (Literal["holtwinters", "holtwinters_mul", "snarimax"], "holtwinters"),
            "seasonality": (int | None, None),
            "warmup": (int | None, None),
            "alpha": (float, 0.05),
        },
        check=check_forecast_params,
    ),
    "river_hst": DetectorParams(
        "stream_guard.detect.river_adapter", "RiverHalfSpaceTrees",
        params={
            "n_trees": (int, 10),
            "height": (int, 8),
            "window_size": (int, 250),
            "seed": (int | None, None),
            "warmup": (int, 100),
        },
    ),
    # The general-purpose detector: finds its own season, calibrated, best on NAB.
    "auto_seasonal": DetectorParams(
        "stream_guard.detect.auto_seasonal", "AutoSeasonal",
        params={
            "horizons": (_HORIZONS, (1, 8, 48)),
            "level": (float, 3.5),
            "hold": (int, 100),
            "damping": (float, 0.25),
            "margin": (float, 5.0),
            "cycles": (int, 3),
            "level_window": (int, 8),
            "slow_level_window": (int | None, 48),
            "slow_horizons": (_HORIZONS, (48,)),
            "shift_window": (int | None, 144),
            "scale_window": (int, 1000),
            "max_period": (int, 1024),
            "min_acf": (float, 0.5),
            "calibration_window": (int, 2000),
            "tail_fraction": (float, 0.05),
            "min_count": (int, 100),
            "clip": (float | None, 3.0),
            "trust_count": (int | None, None),
        },
    ),
    # One calibrated tail probability per point, fewest parts; chosen under the fold protocol.
    "tail_surprise": DetectorParams(
        "stream_guard.detect.tail_surprise", "TailSurprise",
        params={
            "horizons": (_HORIZONS, (1, 16, 48)),
            "shift_window": (int | None, 144),
            "count_floor": (bool, True),
            "local_scale_window": (int | None, None),
            "calibration_window": (int, 2000),
            "tail_fraction": (float, 0.05),
            "clip": (float | None, 3.0),
            "level": (float, 3.5),
            "hold": (int, 100),
            "margin": (float, 5.0),
            "trust_count": (int | None, 20),
        },
    ),
}
"""Every detector type a rule can name (``detector: {type: ...}``)."""
