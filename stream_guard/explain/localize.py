"""Multi-dimensional root-cause localisation (RiskLoc / Squeeze / PSqueeze family).

Given one window's leaf table, find the few elements (slices over 1..d attributes, such as
``{region=BR, category=beauty}``) whose change explains the metric's change.

Model: a root-cause element changes every leaf under it by a common factor (the *ripple
effect*: a slice that drops 30% drops 30% in each of its sub-slices); leaves under no element
keep their forecast. The search is greedy: at each step every element of every cuboid is fitted
(factor = its actual / expected sum) and scored by its *gain*, how much it lowers the table's
noise-weighted absolute error Σ w|actual − expected|, w = 1 / size^p with p the table's own
noise power law (½ counting noise … 1 relative noise). A gain counts only above what √m noisy
leaves reach by chance (Bonferroni over all candidate elements, noise scale from the median
leaf). Among the elements within `tolerance` of the best gain the coarsest is taken (parsimony:
a parent whose sub-slices all moved is the cause, not its largest child); its leaves then leave
the search (no nested elements). The search stops when nothing significant is left or the next
gain is under `relative_gain` × the first one. When the whole table (the empty element) fits
about as well as the best element, the change is platform-wide: ``external``.

Ratio measures (numerator / denominator) are compared in numerator units given the actual
denominator: expected = actual denominator × the leaf's forecast rate. A slice whose rate moved
then deviates; a slice whose traffic merely moved at the usual rate does not. Every step is a
handful of ``np.bincount`` calls per cuboid, so a 21,600-leaf table takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from statistics import NormalDist

import numpy as np

from stream_guard.explain.cube import FloatArray, IntArray, LeafTable

__all__ = ["DEFAULT", "DEFAULT_RATIO", "Cause", "Localisation", "Params", "localize",
           "localize_sparse", "shares_within"]


@dataclass(frozen=True)
class Params:
    # Parsimony: an element within this fraction of the best gain that uses fewer attributes wins.
    tolerance: float = 0.1
    # Family-wise false-alarm rate of the noise floor an element's gain must clear.
    alpha: float = 0.05
    # A further element must gain at least this fraction of the first one's gain.
    relative_gain: float = 0.05
    max_elements: int = 5


# Chosen by benchmarks/rca.py --cross-fit (chosen on one fold, the same on both): additive
# tables have tight forecasts and several elements; ratio tables forecast from a few minutes of
# history, whose heavy-tailed noise calls for stronger parsimony and a stricter second element.
DEFAULT = Params()
DEFAULT_RATIO = Params(tolerance=0.75, relative_gain=0.6)
NOISE_BINS = 6


@dataclass(frozen=True)
class Cause:
    attrs: Mapping[str, str]
    share: float  # of the total change, in [0, 1]; shares of one result sum to <= 1
    change: float  # actual - forecast (for a ratio: of the slice's rate)
    relative_change: float  # change / forecast


@dataclass(frozen=True)
class Localisation:
    elements: tuple[Cause, ...]
    external: bool  # the change is platform-wide: no slice explains it

    @property
    def explained(self) -> float:
        return sum(c.share for c in self.elements)


@dataclass(frozen=True, eq=False)
class _Cuboid:
    attrs: tuple[int, ...]
    inv: IntArray  # leaf -> element index
    keys: IntArray  # element index -> codes of the cuboid's attributes


@dataclass(frozen=True)
class _Pick:
    cuboid: _Cuboid
    element: int
    gain: float

    @property
    def layer(self) -> int:
        return len(self.cuboid.attrs)

    def mask(self) -> np.ndarray:
        return self.cuboid.inv == self.element


def _cuboids(codes: IntArray) -> list[_Cuboid]:
    dims = codes.max(axis=0) + 1
    out = []
    for layer in range(1, codes.shape[1] + 1):
        for attrs in combinations(range(codes.shape[1]), layer):
            flat = np.ravel_multi_index(tuple(codes[:, j] for j in attrs), tuple(dims[list(attrs)]))
            uniq, inv = np.unique(flat, return_inverse=True)
            keys = np.stack(np.unravel_index(uniq, tuple(dims[list(attrs)])), axis=1)
            out.append(_Cuboid(attrs, inv.astype(np.int64), keys.astype(np.int64)))
    return out


def _units(table: LeafTable) -> tuple[FloatArray, FloatArray]:
    """(actual, expected) per leaf in summable units (numerator units for a ratio)."""
    if table.actual_den is None or table.forecast_den is None:
        return table.actual, table.forecast
    f_den = table.forecast_den
    total = float(f_den.sum())
    global_rate = float(table.forecast.sum()) / total if total > 0 else 0.0
    safe = np.where(f_den > 0, f_den, 1.0)
    rate = np.where(f_den > 0, table.forecast / safe, global_rate)
    return table.actual, table.actual_den * rate


def _gains(v: FloatArray, a: FloatArray, w: FloatArray, cub: _Cuboid) -> FloatArray:
    """Per element of `cub`: the drop in Σ w|v − a| when its leaves are scaled by its own factor."""
    n = len(cub.keys)
    resid = np.bincount(cub.inv, weights=v - a, minlength=n)
    base = np.bincount(cub.inv, weights=a, minlength=n)
    factor = np.where(base > 0, resid / np.where(base > 0, base, 1.0), 0.0)
    fitted = a * (1.0 + factor[cub.inv])
    per_leaf = (np.abs(v - a) - np.abs(v - fitted)) * w
    return np.bincount(cub.inv, weights=per_leaf, minlength=n).astype(np.float64)


def _significant(gains: FloatArray, live: np.ndarray, cub: _Cuboid, unit: float) -> FloatArray:
    """Zero the gains that m noisy leaves could reach by chance (unit × √m)."""
    m = np.bincount(cub.inv, weights=live.astype(np.float64), minlength=len(cub.keys))
    return np.where(gains >= unit * np.sqrt(m), gains, 0.0)


def _best(
    v: FloatArray, a: FloatArray, w: FloatArray, cuboids: list[_Cuboid], tol: float, unit: float
) -> _Pick | None:
    """The coarsest significant element within `tol` of the best gain."""
    picks = []
    live = (v + a) > 0
    for cub in cuboids:
        g = _significant(_gains(v, a, w, cub), live, cub, unit)
        i = int(np.argmax(g))
        picks.append(_Pick(cub, i, float(g[i])))
    return _coarsest(picks, tol)


def _coarsest(picks: list[_Pick], tol: float) -> _Pick | None:
    """The coarsest of the picks within `tol` of the best gain (None: no gain)."""
    top = max((p.gain for p in picks), default=0.0)
    if top <= 0:
        return None
    near = [p for p in picks if p.gain >= (1.0 - tol) * top]
    return min(near, key=lambda p: (p.layer, -p.gain))


def _root_gain(v: FloatArray, f: FloatArray, w: FloatArray) -> float:
    total = float(f.sum())
    if total <= 0:
        return 0.0
    factor = float(v.sum()) / total - 1.0
    return float(((np.abs(v - f) - np.abs(v - f * (1.0 + factor))) * w).sum())


def _noise_power(v: FloatArray, f: FloatArray) -> float:
    """Exponent p of |actual − forecast| ∝ size^p: ½ for counting noise, 1 for relative noise.

    Fitted on the median absolute deviation of NOISE_BINS forecast-size quantile bins (medians
    are robust to the few anomalous leaves), clipped to [½, 1].
    """
    size, dev = (v + f) / 2.0, np.abs(v - f)
    keep = size > 0
    if keep.sum() < 2 * NOISE_BINS:
        return 1.0
    order = np.argsort(size[keep])
    points = [
        (float(np.median(size[keep][b])), float(np.median(dev[keep][b])))
        for b in np.array_split(order, NOISE_BINS)
    ]
    xs, ys = zip(*[(np.log(x), np.log(y)) for x, y in points if x > 0 and y > 0], strict=True)
    if len(xs) < 2 or np.ptp(xs) == 0:
        return 1.0
    return float(np.clip(np.polyfit(xs, ys, 1)[0], 0.5, 1.0))


def _weights(v: FloatArray, f: FloatArray) -> FloatArray:
    """1 / the leaf's noise scale, so that gains are in units of typical leaf noise."""
    size = (v + f) / 2.0
    scale = np.where(size > 0, size, 1.0) ** _noise_power(v, f)
    return 1.0 / scale


def _noise_floor(v: FloatArray, f: FloatArray, w: FloatArray, n: int, alpha: float) -> float:
    """The gain one of `n` candidate elements would reach on noise alone (Bonferroni)."""
    z = np.abs(v - f) * w
    z = z[z > 0]
    if len(z) == 0:
        return 0.0
    sigma = 1.4826 * float(np.median(z))
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * max(n, 1))) * sigma


def _explain(v: FloatArray, a: FloatArray, m: np.ndarray) -> tuple[FloatArray, FloatArray]:
    """Take an element's leaves out of the search (RiskLoc-style: no nested elements)."""
    v, a = v.copy(), a.copy()
    v[m], a[m] = 0.0, 0.0
    return v, a


def _search(
    v: FloatArray, f: FloatArray, cuboids: list[_Cuboid], params: Params
) -> list[_Pick] | None:
    """The greedy element search; None when the change is platform-wide or not localised."""
    w = _weights(v, f)
    n = sum(len(c.keys) for c in cuboids)
    unit = _noise_floor(v, f, w, n, params.alpha)
    a = f.copy()
    picks: list[_Pick] = []
    while len(picks) < params.max_elements:
        pick = _best(v, a, w, cuboids, params.tolerance, unit)
        if pick is None or (picks and pick.gain < params.relative_gain * picks[0].gain):
            break
        if not picks and _root_gain(v, f, w) >= (1.0 - params.tolerance) * pick.gain:
            return None
        v, a = _explain(v, a, pick.mask())
        picks.append(pick)
    return picks or None


def _change(table: LeafTable, m: np.ndarray) -> tuple[float, float]:
    """The element's own change (of its rate for a ratio) and its relative change."""
    act, exp = float(table.actual[m].sum()), float(table.forecast[m].sum())
    if table.actual_den is not None and table.forecast_den is not None:
        den_a, den_f = float(table.actual_den[m].sum()), float(table.forecast_den[m].sum())
        act = act / den_a if den_a > 0 else 0.0
        exp = exp / den_f if den_f > 0 else 0.0
    return act - exp, (act - exp) / exp if exp != 0 else 0.0


def _shares(v: FloatArray, f: FloatArray, masks: list[np.ndarray]) -> list[float]:
    """Each element's share of the change of the leaves given (its leaves not yet covered by
    an earlier element), clipped so that together they never exceed 1."""
    total = float((v - f).sum())
    covered = np.zeros(len(v), dtype=bool)
    left, out = 1.0, []
    for m in masks:
        own = float((v - f)[m & ~covered].sum())
        share = min(left, max(0.0, own / total)) if total != 0 else 0.0
        left -= share
        covered |= m
        out.append(share)
    return out


def _causes(table: LeafTable, v: FloatArray, f: FloatArray, picks: list[_Pick]) -> list[Cause]:
    masks = [p.mask() for p in picks]
    out = []
    for p, m, share in zip(picks, masks, _shares(v, f, masks), strict=True):
        key = p.cuboid.keys[p.element]
        attrs = {
            table.attributes[j]: table.values[j][int(c)]
            for j, c in zip(p.cuboid.attrs, key, strict=True)
        }
        change, rel = _change(table, m)
        out.append(Cause(attrs, share, change, rel))
    return out


def _mask(table: LeafTable, attrs: Mapping[str, str]) -> np.ndarray:
    """The leaves of the slice `attrs` (a dimension the table does not have: any value)."""
    m = np.ones(len(table), dtype=bool)
    for name, value in attrs.items():
        if name in table.attributes:
            j = table.attributes.index(name)
            labels = table.values[j]
            m &= table.codes[:, j] == (labels.index(value) if value in labels else -1)
    return m


def shares_within(
    table: LeafTable, causes: Sequence[Cause], scope: Mapping[str, str]
) -> list[float]:
    """Each cause's share of the change inside the slice `scope` (an alert's), as
    `Cause.share` is of the whole table's: an element that explains an alert's slice can be a
    small or even opposite part of the platform's change.

    >>> t = LeafTable.from_columns({"r": ["EU", "EU", "NA"]}, [30.0, 10.0, 0.0],
    ...                            [10.0, 10.0, 20.0])
    >>> c = Cause({"r": "EU"}, 0.0, 20.0, 1.0)
    >>> shares_within(t, [c], {}), shares_within(t, [c], {"r": "EU"})
    ([0.0], [1.0])
    """
    v, f = _units(table)
    inside = _mask(table, scope)
    return _shares(v[inside], f[inside], [_mask(table, c.attrs)[inside] for c in causes])


def localize(
    table: LeafTable, *, ratio: bool = False, params: Params | None = None
) -> Localisation:
    """The root-cause elements of the change in `table`, most explanatory first."""
    return _localize(table, ratio, params or (DEFAULT_RATIO if ratio else DEFAULT), _search,
                     per_event=False)


Search = Callable[[FloatArray, FloatArray, list[_Cuboid], Params], list[_Pick] | None]
"""(actual, forecast, cuboids, params) -> the picks, or None for "platform-wide"."""


def _localize(
    table: LeafTable, ratio: bool, params: Params, search: Search, per_event: bool
) -> Localisation:
    """`search` sees the leaves in events (a sum's values over its `unit`) if `per_event`;
    shares and changes stay in the table's own units."""
    if ratio and not table.is_ratio:
        raise ValueError("ratio=True needs a leaf table with denominators")
    if not ratio and table.is_ratio:
        table = replace(table, actual_den=None, forecast_den=None)
    v, f = _units(table)
    if len(table) == 0 or not np.any(v != f):
        return Localisation((), external=False)
    unit = table.unit if per_event and table.unit is not None and not ratio else None
    sv, sf = (v, f) if unit is None else (v / unit, f / unit)
    picks = search(sv, sf, _cuboids(table.codes), params)
    if picks is None:
        return Localisation((), external=True)
    return Localisation(tuple(_causes(table, v, f, picks)), external=False)  # () : unsure


# --- sparse cubes: element-level Poisson likelihood ------------------------------------------
# A live window's cube is sparse (a 15-minute GMV window spreads ~1,200 orders over ~2,000
# leaves; a complaint window ~100 complaints over 200): a leaf's forecast error is mostly
# counting noise, so the leaf-level fit above sees little. `localize_sparse` scores an element
# by the Poisson log-likelihood ratio of its own factor against its forecast, on its summed
# actual and forecast, in units of the table's dispersion (1 for counts; for a sum, the
# variance per unit of forecast, estimated robustly from the leaves). A sum whose table says
# each leaf's mean value per event (`LeafTable.unit`) is first counted in events: a leaf of
# 100-dollar orders is ten times noisier per dollar than one of 10-dollar orders (compound
# Poisson), which one dispersion for the whole table would take for a change (issue 13:
# electronics, at twice the median order value, had 4x the table's dispersion and was named
# where it had not moved). Under no change, twice that ratio is chi-square with one degree
# of freedom: an element counts when it beats the Bonferroni bound over all candidates
# (`alpha`). Parsimony, greedy removal, the relative floor and the platform-wide verdict are
# the ones above.

_CHI2_1_MEDIAN = 0.4549  # median of the chi-square distribution with one degree of freedom
_PRIOR = 1.0  # one pseudo-event added to every element's expected: a forecast near zero (a
# leaf rarely seen) cannot make a handful of events look like a thousandfold change


def _dispersion(v: FloatArray, f: FloatArray) -> float:
    """Variance per unit of forecast: the median Pearson residual² / its null median (≥ 1)."""
    keep = f > 0
    if keep.sum() < 8:
        return 1.0
    pearson = (v[keep] - f[keep]) ** 2 / f[keep]
    return max(1.0, float(np.median(pearson)) / _CHI2_1_MEDIAN)


def _llr(actual: FloatArray, expected: FloatArray) -> FloatArray:
    """Poisson log-likelihood ratio of rate actual vs expected, elementwise (0 where unknown)."""
    safe_e = np.where(expected > 0, expected, 1.0)
    safe_a = np.where(actual > 0, actual, 1.0)
    term = np.where(actual > 0, actual * np.log(safe_a / safe_e), 0.0)
    return np.where(expected > 0, term - (actual - expected), 0.0)


def _sums(x: FloatArray, cub: _Cuboid) -> FloatArray:
    return np.bincount(cub.inv, weights=x, minlength=len(cub.keys)).astype(np.float64)


def _best_sparse(
    v: FloatArray, a: FloatArray, cuboids: list[_Cuboid], tol: float, floor: float
) -> _Pick | None:
    picks = []
    for cub in cuboids:
        g = _llr(_sums(v, cub), _sums(a, cub) + _PRIOR)
        g = np.where(g >= floor, g, 0.0)
        i = int(np.argmax(g))
        picks.append(_Pick(cub, i, float(g[i])))
    return _coarsest(picks, tol)


def _sparse_search(
    v: FloatArray, f: FloatArray, cuboids: list[_Cuboid], params: Params
) -> list[_Pick] | None:
    """The greedy element search; None when the whole table fits as well or is the only
    significant change (platform-wide), [] when nothing is (too few events to say where)."""
    phi = _dispersion(v, f)
    v, a = v / phi, f / phi
    n = sum(len(c.keys) for c in cuboids)
    z = NormalDist().inv_cdf(1.0 - params.alpha / (2.0 * max(n, 1)))
    floor = z * z / 2.0
    root = float(_llr(np.array([v.sum()]), np.array([a.sum() + _PRIOR]))[0])
    picks: list[_Pick] = []
    while len(picks) < params.max_elements:
        pick = _best_sparse(v, a, cuboids, params.tolerance, floor)
        if pick is None and not picks and root >= floor:
            return None  # the platform moved significantly, no element did on its own
        if pick is None or (picks and pick.gain < params.relative_gain * picks[0].gain):
            break
        if not picks and root >= (1.0 - params.tolerance) * pick.gain:
            return None
        v, a = _explain(v, a, pick.mask())
        picks.append(pick)
    return picks


def localize_sparse(
    table: LeafTable, *, ratio: bool = False, params: Params | None = None
) -> Localisation:
    """`localize` for sparse cubes (a live window's): elements scored by their summed
    Poisson likelihood ratio instead of a leaf-level fit (see above). Unlike `localize`, a
    table where nothing is significant is not called platform-wide: no elements and
    ``external=False`` (the window has too few events to say where; the engine then keeps
    the configured slices' hints, whose detectors see more than one window)."""
    return _localize(table, ratio, params or DEFAULT, _sparse_search, per_event=True)
