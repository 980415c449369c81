"""Root cause over the window's full cube, for one metric: the engine's per-metric RCA state.

Every window the engine hands over the window's cube, its leaves and sellers (`observe`);
nothing is computed then but the folding of leaves whose values have no series. When an
episode opens or escalates, `localise` runs explain/localize.py (`localize_sparse`: a
window's cube is sparse) on the leaf cube with the leaves' forecasts (explain/leaves.py) --
for a ratio whose window alone names nothing, summed with the normal windows before it not
yet learned, one at a time, latest first (the incident may have begun in them before its
detector fired) -- and turns the elements that lie in the episode's slice and move its way
into slice hints, most explanatory first, each with its share of the change in the episode's
slice (they never add up to more than 100%; a fifth at least) and its own change; or the verdict
"platform-wide: no slice explains it". `sellers` names the few sellers that carry the change
of a count or ratio metric, if a few do (explain/sellers.py). The episode's later records
reuse what its opening or escalation found (`remember`/`recall`). Normal windows (nothing
anomalous) are then learned, a few windows late (`settle`), so an incident never becomes its
own forecast.

Bounded: the leaf model keeps at most `max_series` leaves, the seller baseline 100 x `top`
sellers, the cache one entry per open episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stream_guard.aggregate.cube import WindowCube
from stream_guard.config.rules import MetricRule
from stream_guard.explain.cube import LeafTable
from stream_guard.explain.leaves import LeafModel, Leaves, fold_leaves
from stream_guard.explain.localize import Localisation, localize_sparse, shares_within
from stream_guard.explain.sellers import SellerBaseline, Sellers, carrying_sellers
from stream_guard.explain.slices import MIN_SHARE, broad_hint, level_hint
from stream_guard.types import (
    Direction,
    RootCauseHint,
    Score,
    SliceKey,
    overlaps,
    slice_key,
)

__all__ = ["LEAF_HALF_LIFE_S", "LEARN_LAG", "RATE_HALF_LIFE_S", "RootCause", "seller_hint"]

LEAF_HALF_LIFE_S = 2 * 3600.0
"""An additive metric's mix over its leaves moves through the day (regions live in different
time zones): its leaf shares are learned with a 2-hour half-life."""
RATE_HALF_LIFE_S = 86_400.0
"""A ratio's leaf rates are steady but sparse (a complaint per leaf per window or less): a day."""
_SELLERS_KEPT_PER_TOP = 100
LEARN_LAG = 6
"""Normal windows wait this long before they are learned: longer than most detection delays
(a median of 2-4 windows on the simulated weeks, README), so an incident's first windows,
not yet anomalous, are dropped with it."""


@dataclass
class RootCause:
    """One metric's leaf model, seller baseline, this window's cube and the episodes' hints."""

    leaves: LeafModel | None
    sellers: SellerBaseline | None
    seller_field: str | None
    top_sellers: int
    max_hints: int
    unit: str
    ratio: bool
    hints: dict[str, list[RootCauseHint]] = field(default_factory=dict)  # episode id ->
    _window: Leaves = field(default_factory=dict)
    _counts: dict[str, float] = field(default_factory=dict)
    _found: Localisation | None = None  # this window's, computed once
    _table: LeafTable | None = None  # the leaf table `_found` was found on
    _lagged: list[tuple[Leaves, dict[str, float]]] = field(default_factory=list)
    _memo: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)  # fold_leaves'
    _series: frozenset[SliceKey] = frozenset()

    def __getstate__(self) -> dict[str, object]:
        """Saved without the fold cache (rebuilt in a window) nor this window's localisation
        (found again from the window and the leaf model, which are saved)."""
        return {**self.__dict__, "_memo": {}, "_series": frozenset(), "_found": None,
                "_table": None}

    @classmethod
    def for_rule(cls, rule: MetricRule) -> RootCause:
        width = rule.window.total_seconds()
        ratio = rule.value in ("ratio", "mean")
        dims = rule.leaf_dimensions
        half_life = (RATE_HALF_LIFE_S if ratio else LEAF_HALF_LIFE_S) / width
        leaves = LeafModel(dims, ratio, max(1.0, half_life), rule.max_series) if dims else None
        policy, seller_field = rule.explain.sellers, rule.seller_field
        sellers = None
        if policy is not None and seller_field is not None:
            sellers = SellerBaseline(max(1.0, RATE_HALF_LIFE_S / width),
                                     _SELLERS_KEPT_PER_TOP * policy.top)
        top = policy.top if policy is not None else 0
        unit = rule.unit or (rule.numerator.topic if rule.numerator else "events")
        return cls(leaves, sellers, seller_field, top, rule.explain.max_hints, unit, ratio)

    def observe(
        self, cube: WindowCube | None, known: Callable[[SliceKey], bool],
        series: frozenset[SliceKey] = frozenset(),
    ) -> None:
        """This window's cube (None: none, or incomplete): its leaves, folded to the values
        with a series (`known`, which answers as long as `series`, the single-dimension slices
        with one, stays), and seller counts."""
        if series != self._series or len(self._memo) > 4 * (self.leaves.max_leaves
                                                            if self.leaves else 0):
            self._memo, self._series = {}, series
        leaves = self.leaves
        self._window = {} if cube is None or leaves is None else fold_leaves(
            cube.leaves, leaves.dimensions, known, self._memo)
        self._counts = {} if cube is None else {s: acc[0] for s, acc in cube.sellers.items()}
        self._found, self._table = None, None

    def settle(self, normal: bool) -> None:
        """After the window's records: a normal window waits `LEARN_LAG` windows and is then
        learned; an anomalous one is not, and neither are the normal windows just before it,
        which may hold the start of the incident that its detector needed a few windows to
        see (the leaves would otherwise learn the incident as the usual)."""
        if not normal:
            self._lagged.clear()
            return
        self._lagged.append((self._window, self._counts))
        if len(self._lagged) > LEARN_LAG:
            leaves, counts = self._lagged.pop(0)
            if self.leaves is not None and leaves:
                self.leaves.learn(leaves)
            if self.sellers is not None:
                self.sellers.learn(counts)

    def localise(
        self, scores: list[Score], slice_: SliceKey, direction: Direction
    ) -> list[RootCauseHint] | None:
        """Slice hints for an episode on `slice_` moving `direction`, from the leaf cube;
        None when the cube says nothing (no cube, or no element and no verdict)."""
        found = self._localisation(scores)
        if found is None or self._table is None:
            return None
        sign = 1.0 if direction == "up" else -1.0
        moved = [c for c in found.elements if sign * c.change > 0
                 and overlaps(slice_key(c.attrs), slice_)]
        shares = shares_within(self._table, moved, dict(slice_))  # of the episode's change
        mine = [(c, s) for c, s in zip(moved, shares, strict=True) if s >= MIN_SHARE]
        if mine:
            return [level_hint(slice_key(c.attrs), s, c.relative_change)
                    for c, s in mine[: self.max_hints]]
        if found.external:
            return [broad_hint("no slice explains it")]
        return None

    def _localisation(self, scores: list[Score]) -> Localisation | None:
        if self.leaves is None or not self._window or self.leaves.learned == 0:
            return None
        if self._found is None or self._table is None:
            glob = next((s for s in scores if not s.point.slice), None)
            expected = None if glob is None else glob.expected
            window, earlier = self._window, [w for w, _ in reversed(self._lagged)]
            table = self.leaves.table(window, expected)
            found = localize_sparse(table, ratio=self.leaves.ratio)
            while self.leaves.ratio and not found.elements and not found.external and earlier:
                window = _summed(window, earlier.pop(0))  # the incident may have begun there
                table = self.leaves.table(window, expected)
                found = localize_sparse(table, ratio=True)
            self._found, self._table = found, table
        return self._found

    def seller_hint(self, scores: list[Score], direction: Direction) -> RootCauseHint | None:
        """The sellers that carry the platform's change this window, if a few do."""
        glob = next((s for s in scores if not s.point.slice), None)
        if self.sellers is None or glob is None or glob.expected is None:
            return None
        p = glob.point
        expected = p.denominator * glob.expected if self.ratio else glob.expected
        found = carrying_sellers(self._counts, self.sellers, p.numerator - expected, expected,
                                 direction == "up", self.top_sellers)
        return None if found is None else seller_hint(found, self.seller_field or "", self.unit)

    def remember(self, episode_id: str, hints: list[RootCauseHint]) -> None:
        self.hints[episode_id] = hints

    def recall(self, episode_id: str) -> list[RootCauseHint] | None:
        return self.hints.get(episode_id)

    def forget(self, episode_id: str) -> None:
        self.hints.pop(episode_id, None)


def _summed(a: Leaves, b: Leaves) -> Leaves:
    """Two windows' leaves added up.

    >>> _summed({("EU",): [1.0, 10.0]}, {("EU",): [2.0, 20.0], ("NA",): [0.0, 5.0]})
    {('EU',): [3.0, 30.0], ('NA',): [0.0, 5.0]}
    """
    out = {k: list(v) for k, v in a.items()}
    for k, (num, den) in b.items():
        cur = out.setdefault(k, [0.0, 0.0])
        cur[0] += num
        cur[1] += den
    return out


def seller_hint(found: Sellers, field_name: str, unit: str) -> RootCauseHint:
    """"3 sellers explain 71%: s-001234 (+480 complaints), s-000042 (+35), ..."."""
    parts = [f"{s.seller} ({s.change:+.0f}{' ' + unit if i == 0 else ''})"
             for i, s in enumerate(found.sellers)]
    n = len(found.sellers)
    noun = "seller" if n == 1 else "sellers"
    verb = "explains" if n == 1 else "explain"
    return RootCauseHint(
        "sellers", f"{n} {noun} {verb} {found.share:.0%}: {', '.join(parts)}",
        {"field": field_name, "share": round(found.share, 4),
         "sellers": [{"seller": s.seller, "change": round(s.change, 2)} for s in found.sellers]},
    )
