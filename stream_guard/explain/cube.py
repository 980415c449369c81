"""One window's leaf table: every observed combination of a metric's dimensions.

Attributes are integer-coded columns (``codes[:, j]`` indexes ``values[j]``) so that slices over any
subset of attributes aggregate with ``np.bincount``. An additive measure has ``actual`` and
``forecast``; a ratio measure also carries its denominator's (``actual_den``, ``forecast_den``)
and ``actual``/``forecast`` are then the numerator's. A sum (GMV) may carry ``unit``, each leaf's
mean value per event: a sum of event values is noisier per unit of value where events are
bigger (compound Poisson: variance = events x mean square value), which `localize_sparse` weighs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["LeafTable"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _floats(x: ArrayLike, n: int, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: values must be finite")
    return arr


def _positive(x: ArrayLike, n: int) -> FloatArray:
    arr = _floats(x, n, "unit")
    if np.any(arr <= 0):
        raise ValueError("unit: values must be positive")
    return arr


@dataclass(frozen=True, eq=False)
class LeafTable:
    attributes: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]  # per attribute, the label of each code
    codes: IntArray  # (n_leaves, n_attributes)
    actual: FloatArray
    forecast: FloatArray
    actual_den: FloatArray | None = None
    forecast_den: FloatArray | None = None
    unit: FloatArray | None = None  # a sum's mean value per event, per leaf (> 0)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def is_ratio(self) -> bool:
        return self.actual_den is not None and self.forecast_den is not None

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Sequence[object] | NDArray[np.generic]],
        actual: ArrayLike,
        forecast: ArrayLike,
        actual_den: ArrayLike | None = None,
        forecast_den: ArrayLike | None = None,
        unit: ArrayLike | None = None,
    ) -> LeafTable:
        """Encode one label column per attribute (labels are compared as strings)."""
        if not columns:
            raise ValueError("a leaf table needs at least one attribute")
        names = tuple(columns)
        n = len(np.asarray(actual))
        codes = np.empty((n, len(names)), dtype=np.int64)
        values: list[tuple[str, ...]] = []
        for j, name in enumerate(names):
            labels = np.asarray([str(x) for x in columns[name]], dtype=object)
            if labels.shape != (n,):
                raise ValueError(f"column {name!r}: expected {n} labels, got {labels.shape}")
            uniq, inv = np.unique(labels.astype(str), return_inverse=True)
            codes[:, j] = inv
            values.append(tuple(str(u) for u in uniq))
        if (actual_den is None) != (forecast_den is None):
            raise ValueError("give both denominators or neither")
        return cls(
            attributes=names,
            values=tuple(values),
            codes=codes,
            actual=_floats(actual, n, "actual"),
            forecast=_floats(forecast, n, "forecast"),
            actual_den=None if actual_den is None else _floats(actual_den, n, "actual_den"),
            forecast_den=None if forecast_den is None else _floats(forecast_den, n, "forecast_den"),
            unit=None if unit is None else _positive(unit, n),
        )
