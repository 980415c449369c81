"""Column tables of generated events and the vectorised draws that fill them.

A `Table` holds one topic's events as numpy columns sorted by event time, with dimension values
as small integer codes (see catalog.py). Nothing becomes a Python object before encoding, which
is what makes a week of traffic take seconds.

>>> rng = np.random.default_rng(0)
>>> ts, region = poisson_arrivals(np.full((3, 2), 50.0), start_ms=0, rng=rng)
>>> len(ts) > 250, bool(ts.max() < 3 * 60_000), sorted(set(region.tolist()))
(True, True, [0, 1])
>>> table = Table("orders", np.array([5, 1]), {"region": np.array([1, 0])}).sorted()
>>> table.ts_ms.tolist(), table["region"].tolist(), slice_mask(table, (("region", "EU"),)).tolist()
([1, 5], [0, 1], [False, True])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from stream_guard.simulate.catalog import CATEGORIES, CHANNELS, PAYMENTS, REGIONS, TIERS
from stream_guard.types import SliceKey

__all__ = [
    "DIMENSION_VALUES",
    "Table",
    "draw",
    "draw_given",
    "poisson_arrivals",
    "slice_mask",
]

DIMENSION_VALUES: Mapping[str, tuple[str, ...]] = {
    "region": REGIONS,
    "category": CATEGORIES,
    "seller_tier": TIERS,
    "payment_method": PAYMENTS,
    "channel": CHANNELS,
}
_MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Table:
    """One topic's events: event times in epoch ms and named columns of equal length."""

    topic: str
    ts_ms: np.ndarray
    columns: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ts_ms)

    def __getitem__(self, column: str) -> np.ndarray:
        return self.columns[column]

    def take(self, rows: np.ndarray) -> Table:
        """The rows selected by a boolean mask or an index array, in that order."""
        return Table(self.topic, self.ts_ms[rows], {k: v[rows] for k, v in self.columns.items()})

    def sorted(self) -> Table:
        """Rows in event-time order (stable, so equal times keep their draw order)."""
        return self.take(np.argsort(self.ts_ms, kind="stable"))

    def window(self, start_ms: int, end_ms: int) -> np.ndarray:
        """Mask of rows with start <= ts < end."""
        return np.asarray((self.ts_ms >= start_ms) & (self.ts_ms < end_ms))


def slice_mask(table: Table, key: SliceKey) -> np.ndarray:
    """Mask of rows whose dimensions match every (dimension, value) pair of `key`."""
    mask = np.ones(len(table), dtype=bool)
    for dimension, value in key:
        mask &= table[dimension] == DIMENSION_VALUES[dimension].index(value)
    return mask


def poisson_arrivals(
    rate: np.ndarray, start_ms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals of a Poisson process with `rate[minute, region]` events per minute.

    Returns (ts_ms, region code), unsorted; times are uniform within their minute.
    """
    counts = rng.poisson(rate).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    minute, region = np.divmod(cell, rate.shape[1])
    offset = rng.integers(0, _MINUTE_MS, size=cell.size)
    return start_ms + minute * _MINUTE_MS + offset, region.astype(np.int8)


def draw(mix: tuple[float, ...], size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` codes drawn from the probabilities `mix`."""
    return _inverse_cdf(np.cumsum(mix), rng.random(size))


def draw_given(
    table: tuple[tuple[float, ...], ...], given: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One code per row, drawn from the row of `table` selected by `given` (e.g. the region)."""
    cdf = np.cumsum(np.asarray(table), axis=1)[given]
    return _inverse_cdf(cdf, rng.random(len(given)))


def _inverse_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    # Normalise so the last step is exactly 1: a rounding gap must not select a zero-probability
    # trailing value (cash on delivery in NA).
    cdf = cdf / cdf[..., -1:]
    last = cdf.shape[-1] - 1
    if cdf.ndim == 1:
        return np.minimum(np.searchsorted(cdf, u, side="right"), last).astype(np.int8)
    return np.minimum((u[:, None] >= cdf).sum(axis=1), last).astype(np.int8)
