"""Incidents: what goes wrong, where and when: the ground truth of a backtest.

An incident multiplies one metric inside one slice for a time window: GMV drops (a payment
method fails in a region, a category disappears from search, the whole checkout slows down),
GMV spikes (a flash-sale bot), complaint, violation and bad-seller rates jump. The planner draws
them from the seed and places them so that each stays unambiguous:

- none in the first 36 hours (detectors warm up) nor in the last window or two;
- on one metric, at least 12 hours between the end of one incident and the start of the next;
- slices carry enough volume to be detectable: 5% or more of the metric's GMV or of its rate's
  numerator (complaints, violations), 10% of onboarding decisions.

`magnitude` is the factor applied to the metric inside the slice: 0.2 is an 80% drop, 3.0 is
three times the normal rate. The opt-in scenarios (scenarios.py) add incidents with other
effects: a `creep` shape ramps the factor from 1 at the start to `magnitude` at the end, a
`mix` effect moves the order mix instead of a rate, a `sellers` effect puts the change on a few
sellers; their labels also carry `kind`, `effect`, `shape` and `sellers`.

>>> plan = plan_incidents(start_ms=0, days=7, rng=np.random.default_rng(3))
>>> len(plan) >= 12, sorted({i.metric for i in plan}) == sorted(METRICS)
(True, True)
>>> plan_incidents(start_ms=0, days=1, rng=np.random.default_rng(3))
[]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from stream_guard.simulate.catalog import (
    ONBOARDING_REGION_MIX,
    PAYMENT_MIX,
    PAYMENTS,
    REGION_MIX,
    REGIONS,
    complaint_share,
    gmv_share,
    violation_share,
)
from stream_guard.simulate.tables import Table, slice_mask
from stream_guard.types import Direction, SliceKey, iso_utc, slice_key

__all__ = [
    "KINDS",
    "METRICS",
    "Cause",
    "Effect",
    "Incident",
    "IncidentKind",
    "Metric",
    "Shape",
    "plan_incidents",
]

Metric = Literal["gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate"]
Cause = Literal["external", "intervention"]
Effect = Literal["level", "mix", "sellers", "bots"]
"""What moves: the metric inside the slice; the slice's share of the orders (a ratio's
per-slice rates unchanged); or a few sellers of the slice (`Incident.sellers`)."""
Shape = Literal["step", "creep"]
"""How the factor evolves: `magnitude` throughout, or from 1 at the start to `magnitude`."""
METRICS: tuple[Metric, ...] = (
    "gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate",
)  # fmt: skip

_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000
WARMUP_HOURS = 36
SPACING_HOURS = 12
HOURS_PER_INCIDENT = 10  # one incident per 10 eligible hours: 13 in a week, 1 in two days
MIN_SHARE = 0.05
# The onboarding metric has ~3k events a day and 6 h windows: ask for more volume and margin.
_MIN_SHARE_ONBOARDING = 0.10
_END_MARGIN_HOURS: Mapping[Metric, int] = {"bad_seller_onboarding_rate": 6}
_DEFAULT_END_MARGIN_HOURS = 2


@dataclass(frozen=True, slots=True)
class Incident:
    """One labelled anomaly: the metric changes by `magnitude` in `slice` over [start, end)."""

    id: str
    kind: str
    metric: Metric
    slice: SliceKey
    direction: Direction
    start_ms: int
    end_ms: int
    magnitude: float
    cause: Cause
    action_id: str | None
    description: str
    effect: Effect = "level"
    shape: Shape = "step"
    sellers: tuple[int, ...] = ()  # seller numbers (effect "sellers"); ids s-000042 in labels

    def factor(self, ts_ms: np.ndarray) -> np.ndarray:
        """The factor at each time of `ts_ms` (inside the incident's window).

        >>> creep = Incident("i", "k", "gmv", (), "up", 0, 100, 3.0, "external", None, "",
        ...                  shape="creep")
        >>> creep.factor(np.array([0, 50, 100])).tolist()
        [1.0, 2.0, 3.0]
        """
        if self.shape == "step":
            return np.full(len(ts_ms), self.magnitude)
        progress = np.clip((ts_ms - self.start_ms) / (self.end_ms - self.start_ms), 0.0, 1.0)
        return np.asarray(1.0 + (self.magnitude - 1.0) * progress)

    def hit(self, table: Table) -> np.ndarray:
        """Mask of the rows of `table` the incident acts on: in its window and its slice (and,
        for a `sellers` effect, of its sellers)."""
        mask = slice_mask(table, self.slice) & table.window(self.start_ms, self.end_ms)
        if self.effect == "sellers":
            mask &= np.isin(table["seller"], self.sellers)
        return np.asarray(mask)

    def to_label(self) -> dict[str, Any]:
        """The entry of labels.json (ISO-8601 UTC times); incidents of the opt-in scenarios
        also say their kind, effect, shape and sellers (the default labels keep their keys)."""
        label = self._label()
        if self.kind not in KINDS:
            label.update(kind=self.kind, effect=self.effect, shape=self.shape,
                         sellers=[f"s-{n:06d}" for n in self.sellers])
        return label

    def _label(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "metric": self.metric,
            "slice": dict(self.slice),
            "direction": self.direction,
            "start": iso_utc(self.start_ms),
            "end": iso_utc(self.end_ms),
            "magnitude": self.magnitude,
            "cause": self.cause,
            "action_id": self.action_id,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class IncidentKind:
    """A family of incidents: which metric moves, in which candidate slices, how much, how long.

    `templates` maps the slice's first dimension (or "" for platform-wide) to a description.
    """

    name: str
    metric: Metric
    direction: Direction
    candidates: tuple[SliceKey, ...]
    magnitude: tuple[float, float]
    hours: tuple[int, int]
    cause: Cause
    templates: Mapping[str, str]

    def describe(self, key: SliceKey) -> str:
        return self.templates[key[0][0] if key else ""].format(**dict(key))


def _slices(
    shares: Mapping[str, float], dimension: str, low: float, high: float = 1.0
) -> list[SliceKey]:
    return [slice_key({dimension: v}) for v, s in shares.items() if low <= s + 1e-9 <= high]


def _payment_pairs() -> tuple[SliceKey, ...]:
    return tuple(
        slice_key({"region": region, "payment_method": payment})
        for r, region in enumerate(REGIONS)
        for p, payment in enumerate(PAYMENTS)
        if REGION_MIX[r] * PAYMENT_MIX[r][p] >= MIN_SHARE
    )


def _onboarding_regions() -> tuple[SliceKey, ...]:
    shares = dict(zip(REGIONS, ONBOARDING_REGION_MIX, strict=True))
    return tuple(_slices(shares, "region", _MIN_SHARE_ONBOARDING))


_CATEGORY_GMV = _slices(gmv_share("category"), "category", MIN_SHARE)
_VIOLATION_CATEGORIES = tuple(_slices(violation_share("category"), "category", MIN_SHARE))
# A spike is a slice event: skip slices so big that doubling them doubles the platform.
_SPIKE_SLICES = tuple(
    _slices(gmv_share("category"), "category", MIN_SHARE, 0.4)
    + _slices(gmv_share("channel"), "channel", MIN_SHARE, 0.4)
)
# A bad batch of sellers comes through the low tiers; trusted gold and silver sellers do not.
_COMPLAINT_SLICES = tuple(
    [slice_key({"seller_tier": tier}) for tier in ("bronze", "new")]
    + _slices(complaint_share("category"), "category", MIN_SHARE)
)

KINDS: Mapping[str, IncidentKind] = {
    k.name: k
    for k in (
        IncidentKind("payment_outage", "gmv", "down", _payment_pairs(), (0.1, 0.3), (1, 4),
                     "external",
                     {"payment_method": "{payment_method} payments outage in {region}"}),
        IncidentKind("category_drop", "gmv", "down", tuple(_CATEGORY_GMV), (0.4, 0.6), (1, 4),
                     "external", {"category": "search indexing bug hides {category} listings"}),
        IncidentKind("platform_drop", "gmv", "down", ((),), (0.65, 0.75), (1, 4), "external",
                     {"": "checkout latency degradation platform-wide"}),
        IncidentKind("flash_sale_bot", "gmv", "up", _SPIKE_SLICES, (2.0, 3.0), (1, 4), "external",
                     {"category": "flash-sale bot buying out {category} deals",
                      "channel": "flash-sale bot hammering the {channel} channel"}),
        IncidentKind("bad_seller_batch", "complaint_rate", "up", _COMPLAINT_SLICES, (3.0, 5.0),
                     (1, 4), "external",
                     {"seller_tier": "batch of fraudulent {seller_tier}-tier sellers not shipping",
                      "category": "defective {category} batch from a large supplier"}),
        IncidentKind("rule_launch", "violation_rate", "up", _VIOLATION_CATEGORIES, (3.0, 4.0),
                     (1, 4), "intervention",
                     {"category": "new counterfeit rule for {category} over-flags listings"}),
        IncidentKind("counterfeit_wave", "violation_rate", "up", _VIOLATION_CATEGORIES,
                     (3.0, 4.0), (1, 4), "external",
                     {"category": "wave of counterfeit {category} listings reported by buyers"}),
        IncidentKind("fraud_ring", "bad_seller_onboarding_rate", "up", _onboarding_regions(),
                     (3.0, 5.0), (6, 18), "external",
                     {"region": "fraud ring onboarding fake sellers in {region}"}),
    )
}  # fmt: skip

# The order in which kinds are added as the simulation gets longer: a 3-day run already has a
# GMV outage, the intervention and a complaint spike; a week has every kind.
PRIORITY = (
    "payment_outage", "rule_launch", "bad_seller_batch", "flash_sale_bot", "fraud_ring",
    "category_drop", "platform_drop", "bad_seller_batch", "counterfeit_wave", "fraud_ring",
    "payment_outage", "bad_seller_batch", "flash_sale_bot",
)  # fmt: skip


def incident_count(days: int) -> int:
    """How many incidents fit a run of `days`: one per 10 hours after warm-up.

    >>> [incident_count(d) for d in (1, 2, 3, 7, 14)]
    [0, 1, 3, 13, 29]
    """
    eligible = days * 24 - WARMUP_HOURS - _DEFAULT_END_MARGIN_HOURS
    return max(0, eligible // HOURS_PER_INCIDENT)


def plan_incidents(start_ms: int, days: int, rng: np.random.Generator) -> list[Incident]:
    """Draw the incidents of a run, sorted by start and numbered inc-01, inc-02, ...

    `action_id` is None here; governance.py attaches the action of intervention incidents.
    """
    kinds = [KINDS[PRIORITY[i % len(PRIORITY)]] for i in range(incident_count(days))]
    picker = _SlicePicker(rng)
    drafts: list[Incident] = []
    for metric in METRICS:
        lane = [k for k in kinds if k.metric == metric]
        drafts += _place_lane(lane, start_ms, days, metric, rng, picker)
    drafts.sort(key=lambda i: (i.start_ms, i.metric))
    width = max(2, len(str(len(drafts))))
    return [replace(d, id=f"inc-{n:0{width}d}") for n, d in enumerate(drafts, start=1)]


class _SlicePicker:
    """Chooses slices with the seed, cycling through a shuffled list so repeats come last."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._queues: dict[str, list[SliceKey]] = {}

    def pick(self, kind: IncidentKind) -> SliceKey:
        queue = self._queues.get(kind.name)
        if not queue:
            order = self._rng.permutation(len(kind.candidates))
            queue = self._queues[kind.name] = [kind.candidates[int(i)] for i in order]
        return queue.pop(0)


def _place_lane(
    lane: list[IncidentKind],
    start_ms: int,
    days: int,
    metric: Metric,
    rng: np.random.Generator,
    picker: _SlicePicker,
) -> list[Incident]:
    """Spread one metric's incidents over its eligible time with random gaps of >= 12 hours."""
    first = WARMUP_HOURS * 60
    last = days * 24 * 60 - _END_MARGIN_HOURS.get(metric, _DEFAULT_END_MARGIN_HOURS) * 60
    durations = [int(rng.integers(k.hours[0] * 60, k.hours[1] * 60 + 1)) for k in lane]
    while lane and sum(durations) + SPACING_HOURS * 60 * (len(lane) - 1) > last - first:
        lane, durations = lane[:-1], durations[:-1]
    if not lane:
        return []
    slack = last - first - sum(durations) - SPACING_HOURS * 60 * (len(lane) - 1)
    gaps = np.floor(rng.dirichlet(np.ones(len(lane) + 1)) * slack).astype(np.int64)
    incidents, minute = [], first
    for kind, duration, gap in zip(lane, durations, gaps.tolist(), strict=False):
        minute += gap
        incidents.append(_draft(kind, start_ms + minute * _MINUTE_MS, duration, rng, picker))
        minute += duration + SPACING_HOURS * 60
    return incidents


def _draft(
    kind: IncidentKind, begin_ms: int, minutes: int, rng: np.random.Generator, picker: _SlicePicker
) -> Incident:
    key = picker.pick(kind)
    magnitude = round(float(rng.uniform(*kind.magnitude)), 2)
    return Incident(
        id="",
        kind=kind.name,
        metric=kind.metric,
        slice=key,
        direction=kind.direction,
        start_ms=begin_ms,
        end_ms=begin_ms + minutes * _MINUTE_MS,
        magnitude=magnitude,
        cause=kind.cause,
        action_id=None,
        description=kind.describe(key),
    )
