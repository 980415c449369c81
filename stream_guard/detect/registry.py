"""The detectors a rule can name, and strict validation of their parameters.

A rule says ``detector: {type: seasonal, alpha: 0.05}``. The parameter model of each detector is
derived from its constructor (its hyper-parameters), so there is one place that defines them:
unknown parameters and wrong types are refused at load, and the rule JSON Schema lists them.

Every detector is built behind `Guarded` (finite, bounded inputs and scores; see guard.py):

>>> det = build_detector("rate", {"min_denominator": 50})
>>> type(det).__name__, det.detector.min_denominator
('Guarded', 50.0)
>>> build_detector("rate", {"min_denomintor": 50})
Traceback (most recent call last):
...
ValueError: min_denomintor: Extra inputs are not permitted
"""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from stream_guard.detect.auto_seasonal import AutoSeasonal
from stream_guard.detect.base import Detector, DetectorBase
from stream_guard.detect.guard import Guarded
from stream_guard.detect.rate import RateTest
from stream_guard.detect.river_adapter import RiverForecast, RiverHalfSpaceTrees
from stream_guard.detect.seasonal import SeasonalBaseline
from stream_guard.detect.threshold import StaticThreshold

__all__ = ["CONTEXT_PARAMS", "DETECTORS", "build_detector", "params_model"]

DETECTORS: dict[str, type[DetectorBase]] = {
    "seasonal": SeasonalBaseline,
    "rate": RateTest,
    "threshold": StaticThreshold,
    "river_forecast": RiverForecast,
    "river_hst": RiverHalfSpaceTrees,
    # The general-purpose detector: finds its own season, calibrated, best on NAB.
    "auto_seasonal": AutoSeasonal,
}

CONTEXT_PARAMS = frozenset({"window"})
"""Constructor parameters the engine fills from the rule (the window, in seconds)."""


@cache
def params_model(kind: str) -> type[BaseModel]:
    """A strict pydantic model of the detector's constructor parameters."""
    cls = DETECTORS[kind]
    hints = get_type_hints(cls.__init__)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in CONTEXT_PARAMS:
            continue
        annotation = hints.get(name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (annotation, default)
    config = ConfigDict(extra="forbid", strict=False)
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Checked and coerced parameters; raises ValueError naming the parameter."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown detector type {kind!r} (known: {', '.join(sorted(DETECTORS))})")
    try:
        model = params_model(kind).model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return model.model_dump()


def build_detector(
    kind: str, params: dict[str, Any], window_s: float | None = None
) -> Detector:
    """A fresh detector behind the numerical guard; `window_s` is passed to detectors that take
    a `window`."""
    checked = validate_params(kind, params)
    cls = DETECTORS[kind]
    if window_s is not None and "window" in inspect.signature(cls.__init__).parameters:
        checked["window"] = window_s
    detector: Detector = cls(**checked)  # type: ignore[assignment]
    return Guarded(detector)
