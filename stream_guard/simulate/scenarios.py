"""Opt-in scenarios: incident kinds the default planner never draws, at fixed hours of a run.

The default scenario is the planner's (incidents.py) and stays byte-identical; every other one
is chosen by name (`SimulationConfig.scenario`, ``stream-guard simulate --scenario NAME``):

- ``rca``     causes that are hard to localise: a GMV outage in a 3-attribute element that is
              not a configured pair ({region, category, payment_method}), a complaint spike in
              a {region, category} element (complaint_rate has no pairs), three sellers
              flooding a category with violating listings, and a pure mix shift: orders of a
              high-complaint seller tier multiplied for 6 hours (per-slice complaint rates
              unchanged; labelled on complaint_rate with effect "mix" and on gmv, whose orders
              it adds);
- ``drops``   rates falling: an enforcement-model outage (violation_rate) and a complaint
              intake outage (complaint_rate), platform-wide;
- ``creep``   a complaint rate creeping up over a day or more;
- ``weekly``  the default incidents over a weekly shape: orders 25% lower at the weekend and
              their daily cycle 3 hours later (normal traffic: every weekend episode is false);
- ``extended`` rca, drops and creep together.
- ``ratios``  a ratio's numerator or denominator moving alone, twice each in a week: the
              complaint intake and enforcement outages of ``drops`` and an order flood (bots or
              test orders nobody complains about: orders 2-3x, platform-wide or in a channel,
              labelled on gmv; complaints stay at their count, so complaint_rate falls with no
              complaint lost: a false "drop" if it alerts).

Each scheduled incident starts at its hour plus up to an hour drawn from the seed; slices and
magnitudes are drawn from the seed too; incidents that would not end 2 hours before the end of
the run are left out (a week fits every one).

>>> [i.kind for i in scenario_incidents("extended", 0, 7, np.random.default_rng(1))][:4]
['element_outage', 'element_complaints', 'seller_flood', 'mix_shift']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from stream_guard.simulate.catalog import (
    CATEGORIES,
    PAYMENT_MIX,
    PAYMENTS,
    REGION_MIX,
    REGIONS,
    complaint_share,
    gmv_share,
    violation_share,
)
from stream_guard.simulate.incidents import MIN_SHARE, Effect, Incident, IncidentKind, Shape
from stream_guard.simulate.orders import WeeklyShape
from stream_guard.simulate.sellers import SellerPool
from stream_guard.types import SliceKey, slice_key

__all__ = ["EXTENDED_KINDS", "SCENARIOS", "Scenario", "attach_sellers", "scenario_incidents"]

_HOUR_MS = 3_600_000
_END_MARGIN_MS = 2 * _HOUR_MS
FLOOD_SELLERS = 3


@dataclass(frozen=True, slots=True)
class _Kind:
    """An opt-in incident kind: the planner's fields plus its effect and shape."""

    base: IncidentKind
    effect: Effect = "level"
    shape: Shape = "step"


def _elements() -> tuple[SliceKey, ...]:
    """{region, category, payment_method} elements with 5% of GMV or more."""
    category = gmv_share("category")
    return tuple(
        slice_key({"region": region, "category": c, "payment_method": payment})
        for r, region in enumerate(REGIONS) for c in CATEGORIES
        for p, payment in enumerate(PAYMENTS)
        if REGION_MIX[r] * category[c] * PAYMENT_MIX[r][p] >= MIN_SHARE
    )


def _region_categories() -> tuple[SliceKey, ...]:
    """{region, category} elements with 5% of complaints or more."""
    category = complaint_share("category")
    return tuple(
        slice_key({"region": region, "category": c})
        for r, region in enumerate(REGIONS) for c in CATEGORIES
        if REGION_MIX[r] * category[c] >= MIN_SHARE
    )


def _big(share: Mapping[str, float], dimension: str) -> tuple[SliceKey, ...]:
    return tuple(slice_key({dimension: v}) for v, s in share.items() if s >= MIN_SHARE)


_PLATFORM: tuple[SliceKey, ...] = ((),)
EXTENDED_KINDS: Mapping[str, _Kind] = {k.base.name: k for k in (
    _Kind(IncidentKind("element_outage", "gmv", "down", _elements(), (0.1, 0.3), (2, 4),
                       "external", {"category": "{payment_method} checkout fails for {category} "
                                                "in {region} (a partner's integration)"})),
    _Kind(IncidentKind("element_complaints", "complaint_rate", "up", _region_categories(),
                       (3.0, 5.0), (2, 4), "external",
                       {"category": "defective {category} batch shipped to {region}"})),
    _Kind(IncidentKind("seller_flood", "violation_rate", "up",
                       _big(violation_share("category"), "category"), (3.0, 4.0), (2, 4),
                       "external", {"category": "3 sellers flood {category} with counterfeits"}),
          effect="sellers"),
    _Kind(IncidentKind("mix_shift", "complaint_rate", "up",
                       (slice_key({"seller_tier": "new"}),),  # 2.4x the usual complaints
                       (3.0, 4.0), (6, 6), "external",
                       {"seller_tier": "order mix shifts toward {seller_tier}-tier sellers "
                                       "(a promotion); their complaint rate is unchanged"}),
          effect="mix"),
    _Kind(IncidentKind("enforcement_outage", "violation_rate", "down", _PLATFORM, (0.2, 0.4),
                       (2, 4), "external",
                       {"": "enforcement model outage: automatic findings stop"})),
    _Kind(IncidentKind("intake_outage", "complaint_rate", "down", _PLATFORM, (0.1, 0.3), (2, 4),
                       "external", {"": "complaint intake outage: the complaint form fails"})),
    _Kind(IncidentKind("order_flood", "gmv", "up",
                       _PLATFORM + _big(gmv_share("channel"), "channel"), (2.0, 3.0), (1, 3),
                       "external", {"": "bot orders flood the platform (nobody complains)",
                                    "channel": "bot orders flood the {channel} channel"}),
          effect="bots"),
    _Kind(IncidentKind("complaint_creep", "complaint_rate", "up",
                       _big(complaint_share("category"), "category"), (2.5, 3.5), (24, 36),
                       "external", {"category": "slowly worsening {category} supplier quality"}),
          shape="creep"),
)}  # fmt: skip

# (kind, hour of the run): at least 12 hours between incidents of one metric.
_RCA = (("element_outage", 40), ("element_complaints", 42), ("seller_flood", 46),
        ("mix_shift", 62))  # fmt: skip
_DROPS = (("enforcement_outage", 70), ("intake_outage", 86))
_CREEP = (("complaint_creep", 104),)
_RATIOS = (("intake_outage", 30), ("order_flood", 44), ("enforcement_outage", 54),
           ("order_flood", 80), ("intake_outage", 92), ("enforcement_outage", 110),
           ("order_flood", 128))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named opt-in: scheduled incident kinds, whether the planner's incidents stay, and
    the orders' weekly shape."""

    name: str
    schedule: tuple[tuple[str, int], ...] = ()
    planned: bool = False
    weekly: WeeklyShape = WeeklyShape()  # noqa: RUF009 (frozen)


SCENARIOS: Mapping[str, Scenario] = {s.name: s for s in (
    Scenario("default", planned=True),
    Scenario("rca", _RCA),
    Scenario("drops", tuple((k, h - 30) for k, h in _DROPS)),
    Scenario("creep", tuple((k, h - 64) for k, h in _CREEP)),
    Scenario("weekly", planned=True, weekly=WeeklyShape(weekend=-0.25, shift_hours=3.0)),
    Scenario("extended", _RCA + _DROPS + _CREEP),
    Scenario("ratios", _RATIOS),
)}  # fmt: skip


def scenario_incidents(
    name: str, start_ms: int, days: int, rng: np.random.Generator,
    planned: list[Incident] | None = None,
) -> list[Incident]:
    """The incidents of scenario `name`, sorted by start and numbered inc-01, ...; the
    planner's `planned` incidents first when the scenario keeps them."""
    scenario = SCENARIOS[name]
    if scenario.planned:
        return list(planned or [])
    end_ms = start_ms + days * 24 * _HOUR_MS - _END_MARGIN_MS
    drafts: list[Incident] = []
    for kind_name, hour in scenario.schedule:
        drafts += _scheduled(EXTENDED_KINDS[kind_name], start_ms + hour * _HOUR_MS, rng)
    drafts = [d for d in drafts if d.end_ms <= end_ms]
    drafts.sort(key=lambda i: (i.start_ms, i.metric))
    width = max(2, len(str(len(drafts))))
    return [replace(d, id=f"inc-{n:0{width}d}") for n, d in enumerate(drafts, start=1)]


def _scheduled(kind: _Kind, hour_ms: int, rng: np.random.Generator) -> list[Incident]:
    """One incident of `kind` starting within the hour after `hour_ms`; a mix shift also
    labels the GMV spike of its slice (the extra orders that shift the mix)."""
    base = kind.base
    key = base.candidates[int(rng.integers(len(base.candidates)))]
    start = hour_ms + int(rng.integers(0, 60)) * 60_000
    minutes = int(rng.integers(base.hours[0] * 60, base.hours[1] * 60 + 1))
    incident = Incident(
        id="", kind=base.name, metric=base.metric, slice=key, direction=base.direction,
        start_ms=start, end_ms=start + minutes * 60_000,
        magnitude=round(float(rng.uniform(*base.magnitude)), 2), cause=base.cause,
        action_id=None, description=base.describe(key), effect=kind.effect, shape=kind.shape,
    )
    if kind.effect != "mix":
        return [incident]
    orders = replace(incident, metric="gmv",
                     description=f"{incident.description} (the extra orders: GMV)")
    return [incident, orders]


def attach_sellers(
    incidents: list[Incident], pool: SellerPool, rng: np.random.Generator
) -> list[Incident]:
    """Incidents with a `sellers` effect get their sellers: the most popular seller of the
    incident's category in 3 different regions."""
    return [
        replace(i, sellers=pool.top_sellers(
            CATEGORIES.index(dict(i.slice)["category"]), FLOOD_SELLERS, rng))
        if i.effect == "sellers" else i
        for i in incidents
    ]

