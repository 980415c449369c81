"""The live leaf cube of one metric: each window's leaves, folded and bounded, and a cheap
forecast per leaf learned online, as the `LeafTable` that `localize` reads.

Sources count every event into its leaf, every dimension at once (aggregate/plan.py
`cube_entry`), and hand a window's leaves over once; the owner receives them merged
(aggregate/cube.py `WindowCube`). Here:

- **Folding.** A leaf value that has no series of its own in the metric (points.py admits the
  heavy hitters of each dimension: volume, `max_series`) becomes its dimension's ``other``, so
  the cube holds the heavy hitters of each dimension and the rest folded, whatever the
  cardinality of the raw values.
- **Forecasts.** Per leaf, exponentially decayed sums of numerator and denominator over the
  windows learned (`half_life` windows, at most `max_leaves` leaves; a leaf unseen for
  `ttl` windows is forgotten). An additive metric's leaf forecast is its share of those sums
  times the platform's expected value (the platform detector's forecast: the level and its
  seasonality come from there, the mix from the leaves); its mean value per event (the
  table's `unit`: how big its counting noise is) is its sums' ratio, given one pseudo-event at
  the platform's mean. A ratio's leaf forecast is its
  decayed rate, given one pseudo-event at the platform's expected rate (a leaf seen rarely
  leans on the platform), times the leaf's actual denominator.

The engine learns a window only when nothing in it was anomalous, so an incident does not
teach the leaves its own level before it is localised (explain/localize.py).

>>> model = LeafModel(("region", "category"), ratio=False, half_life=1.0)
>>> window = {("EU", "toys"): [60.0, 6.0], ("NA", "toys"): [40.0, 4.0]}
>>> model.learn(window)
>>> table = model.table({("EU", "toys"): [10.0, 1.0], ("NA", "toys"): [40.0, 4.0]}, 100.0)
>>> table.forecast.tolist(), table.actual.tolist()
([60.0, 40.0], [10.0, 40.0])
>>> table.unit.tolist()  # mean value per event: (60 + 10) / (6 + 1), (40 + 10) / (4 + 1)
[10.0, 10.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from stream_guard.aggregate.cube import OTHER
from stream_guard.explain.cube import LeafTable
from stream_guard.types import SliceKey

__all__ = ["LeafModel", "Leaves", "fold_leaves"]

Leaves = dict[tuple[str, ...], list[float]]
"""A window's leaves: the value of each cube dimension -> [numerator, denominator]."""


def fold_leaves(
    leaves: Leaves, dims: tuple[str, ...], known: Callable[[SliceKey], bool],
    memo: dict[tuple[str, ...], tuple[str, ...]] | None = None,
) -> Leaves:
    """The window's leaves (values of `dims`) with every value that has no series of its own
    folded into its dimension's ``other`` (`known` says which single-dimension slices have
    one); `memo` remembers each leaf's folded leaf (valid while `known` says the same).

    >>> leaves = {("EU", "x1"): [1.0, 1.0], ("EU", "x2"): [2.0, 1.0]}
    >>> fold_leaves(leaves, ("region", "tier"), lambda key: key == (("region", "EU"),))
    {('EU', 'other'): [3.0, 2.0]}
    """
    memo = {} if memo is None else memo
    out: Leaves = {}
    seen, get = memo.get, out.get
    for raw, (num, den) in leaves.items():
        leaf = seen(raw)
        if leaf is None:
            leaf = memo[raw] = tuple(v if known(((d, v),)) else OTHER
                                     for d, v in zip(dims, raw, strict=True))
        cur = get(leaf)  # add_into, inlined (thousands of leaves per window)
        if cur is None:
            out[leaf] = [num, den]
        else:
            cur[0] += num
            cur[1] += den
    return out


class LeafModel:
    """Per-leaf decayed sums of one metric's cube (bounded: `max_leaves`, `ttl` windows)."""

    def __init__(
        self, dimensions: tuple[str, ...], ratio: bool, half_life: float,
        max_leaves: int = 5000, ttl: int = 672,
    ) -> None:
        self.dimensions = dimensions
        self.ratio = ratio
        self.keep = 0.5 ** (1.0 / half_life)
        self.max_leaves = max_leaves
        self.ttl = ttl
        self.sums: dict[tuple[str, ...], list[float]] = {}  # leaf -> [num, den, last learned]
        self.total = [0.0, 0.0]  # like the sums: divided by `scale`
        self.scale = 1.0
        self.learned = 0  # windows learned

    def learn(self, window: Leaves) -> None:
        """One normal window's folded leaves. The sums decay lazily: they are kept divided by
        `scale` (keep ** windows learned), so a window costs its own leaves, not all of them."""
        n = self.learned
        self.scale *= self.keep
        if self.scale < 1e-100:  # renormalise before the stored sums overflow
            for past in self.sums.values():
                past[0] *= self.scale
                past[1] *= self.scale
            self.total = [self.total[0] * self.scale, self.total[1] * self.scale]
            self.scale = 1.0
        up, sums, last = 1.0 / self.scale, self.sums, float(n)
        get, full = sums.get, len(sums) >= self.max_leaves
        total_num, total_den = self.total
        for leaf, (num, den) in window.items():
            acc = get(leaf)
            if acc is None:
                if full:
                    continue  # bounded: a leaf beyond leans on the platform
                acc = sums[leaf] = [0.0, 0.0, last]
                full = len(sums) >= self.max_leaves
            acc[0] += num * up
            acc[1] += den * up
            acc[2] = last
            total_num += num * up
            total_den += den * up
        self.total = [total_num, total_den]
        self.learned = n + 1
        if self.learned % 64 == 0:  # forget leaves long unseen (cheap: now and then)
            self.sums = {k: v for k, v in self.sums.items() if n - v[2] < self.ttl}

    def table(self, window: Leaves, expected: float | None) -> LeafTable:
        """The window's leaves and the leaves learned (absent now: zero, which is what an
        outage looks like) with their forecasts; `expected` is the platform's forecast (its
        value for an additive metric, its rate for a ratio), None to use the sums'."""
        leaves = sorted(window.keys() | self.sums.keys())
        columns = {d: [leaf[j] for leaf in leaves] for j, d in enumerate(self.dimensions)}
        now = np.array([window.get(k, (0.0, 0.0)) for k in leaves],
                       dtype=np.float64).reshape(-1, 2)
        num, den = now[:, 0], now[:, 1]
        past = np.array([self.sums.get(k, (0.0, 0.0))[:2] for k in leaves],
                        dtype=np.float64).reshape(-1, 2) * self.scale
        if self.ratio:
            rate = self._rate(past, expected)
            return LeafTable.from_columns(columns, num, den * rate, den, den)
        total = self.total[0] * self.scale
        level = expected if expected is not None else total * (1.0 - self.keep)
        share = past[:, 0] / total if total > 0 else np.zeros(len(leaves))
        return LeafTable.from_columns(columns, num, share * max(level, 0.0),
                                      unit=self._unit(past))

    def _unit(self, past: np.ndarray) -> np.ndarray | None:
        """Each leaf's decayed mean value per event with one pseudo-event at the platform's
        (None before any event or for a sum that is not positive)."""
        glob = self.total[0] / self.total[1] if self.total[1] > 0 else 0.0  # (scales cancel)
        if glob <= 0:
            return None
        unit = (past[:, 0] + glob) / (past[:, 1] + 1.0)
        return np.asarray(np.where(unit > 0, unit, glob))

    def _rate(self, past: np.ndarray, expected: float | None) -> np.ndarray:
        """Each leaf's decayed rate with one pseudo-event at the platform's rate."""
        glob = expected if expected is not None and expected > 0 else (
            self.total[0] / self.total[1] if self.total[1] > 0 else 0.0)  # (scales cancel)
        if glob <= 0:
            return np.zeros(len(past))
        return np.asarray((past[:, 0] + 1.0) / (past[:, 1] + 1.0 / glob))
