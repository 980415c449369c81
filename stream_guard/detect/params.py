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
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CONTEXT_PARAMS", "PARAMS", "DetectorParams"]

CONTEXT_PARAMS = frozenset({"window"})
"""Constructor parameters the engine fills from the rule (the window, in seconds)."""


@dataclass(frozen=True)
class DetectorParams:
    """A detector class by import path, and its rule-settable constructor parameters.

    `params` maps each name to ``(annotation, default)`` in signature order (``...`` for a
    parameter without a default); `context` names the `CONTEXT_PARAMS` the constructor takes.
    """

    module: str
    name: str
    params: dict[str, tuple[Any, Any]]
    context: frozenset[str] = frozenset()

    def load(self) -> type:
        """The detector class (imports its module: River's for the River detectors)."""
        cls: type = getattr(importlib.import_module(self.module), self.name)
        return cls


_HORIZONS = tuple[int, ...]

PARAMS: dict[str, DetectorParams] = {
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
        },
    ),
    "rate": DetectorParams(
        "stream_guard.detect.rate", "RateTest",
        params={
            "half_life": (float, 48.0),
            "min_denominator": (float, 30.0),
            "min_excess": (float, 3.0),
            "warmup": (int, 12),
            "clip": (float, 3.0),
            "horizons": (_HORIZONS, (1,)),
            "absorb_after": (int, 12),
            "hold": (float, 3.0),
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
        "stream_guard.detect.river_adapter", "RiverForecast",
        params={
            "model": (Literal["holtwinters", "snarimax"], "holtwinters"),
            "seasonality": (int, 24),
            "warmup": (int, 48),
            "alpha": (float, 0.05),
        },
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
        },
    ),
    # One calibrated tail probability per point, fewest parts; chosen under the fold protocol.
    "tail_surprise": DetectorParams(
        "stream_guard.detect.tail_surprise", "TailSurprise",
        params={
            "horizons": (_HORIZONS, (1, 8, 48)),
            "shift_window": (int | None, 144),
            "count_floor": (bool, True),
            "local_scale_window": (int | None, None),
            "calibration_window": (int, 2000),
            "tail_fraction": (float, 0.05),
            "clip": (float | None, 3.0),
            "level": (float, 3.5),
            "hold": (int, 100),
            "margin": (float, 5.0),
        },
    ),
}
"""Every detector type a rule can name (``detector: {type: ...}``)."""
