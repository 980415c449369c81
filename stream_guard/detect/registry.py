"""The detectors a rule can name, and strict validation of their parameters.

A rule says ``detector: {type: seasonal, alpha: 0.05}``. Each detector's parameters are its
constructor's (its hyper-parameters); `params.PARAMS` describes them without importing the
detector, so a rule loads without River (or numpy) unless a detector is built, and a test checks
each description against its constructor. Unknown parameters and wrong types are refused at load.
`DETECTORS` maps each type to its class, imported on first access.

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

from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from stream_guard.detect.base import Detector, DetectorBase
from stream_guard.detect.guard import Guarded
from stream_guard.detect.params import CONTEXT_PARAMS, PARAMS

__all__ = ["CONTEXT_PARAMS", "DETECTORS", "build_detector", "params_model", "validate_params"]


class _Detectors(Mapping[str, type[DetectorBase]]):
    """Detector type -> class; a class's module is imported when the class is first asked for
    (iterating over the types or testing membership imports nothing)."""

    def __getitem__(self, kind: str) -> type[DetectorBase]:
        return PARAMS[kind].load()

    def __contains__(self, kind: object) -> bool:
        return kind in PARAMS

    def __iter__(self) -> Iterator[str]:
        return iter(PARAMS)

    def __len__(self) -> int:
        return len(PARAMS)


DETECTORS: Mapping[str, type[DetectorBase]] = _Detectors()


@cache
def params_model(kind: str) -> type[BaseModel]:
    """A strict pydantic model of the detector's constructor parameters."""
    desc = PARAMS[kind]
    config = ConfigDict(extra="forbid", strict=False)
    return create_model(f"{desc.name}Params", __config__=config, **desc.params)  # type: ignore[call-overload]


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Checked and coerced parameters; raises ValueError naming the parameter."""
    if kind not in PARAMS:
        raise ValueError(f"unknown detector type {kind!r} (known: {', '.join(sorted(PARAMS))})")
    try:
        model = params_model(kind).model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    checked = model.model_dump()
    check = PARAMS[kind].check
    if check is not None:
        check(checked)
    return checked


def build_detector(
    kind: str, params: dict[str, Any], window_s: float | None = None
) -> Detector:
    """A fresh detector behind the numerical guard; `window_s` is passed to detectors that take
    a `window`."""
    checked = validate_params(kind, params)
    if window_s is not None and "window" in PARAMS[kind].context:
        checked["window"] = window_s
    detector: Detector = DETECTORS[kind](**checked)  # type: ignore[assignment]
    return Guarded(detector)
