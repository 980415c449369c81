"""A platform-wide drop of a ratio (a complaint intake outage: every complaint is lost with the
same probability) names no slice, however small a slice's window; a drop concentrated in one
region still names that region (issue 13, 'a platform-wide change is not a slice')."""

from __future__ import annotations

import numpy as np

from stream_guard.explain.slices import attribute, disproportionate, slice_hints
from stream_guard.types import MetricPoint, RootCauseHint, Score, SliceKey, slice_key

REGIONS = {"NA": 0.30, "EU": 0.30, "APAC": 0.25, "LATAM": 0.15}
CATEGORIES = {"fashion": 0.4, "electronics": 0.35, "home": 0.25}
ORDERS = 2400.0  # a window's orders
RATE = 54 / ORDERS  # 54 complaints where all is well
DRAWS = 200


def _score(labels: dict[str, str], complaints: float, orders: float, flagged: bool = True
           ) -> Score:
    point = MetricPoint("complaint_rate", slice_key(labels), 0, 1, complaints / orders,
                        complaints, orders)
    return Score(point, 9.0, RATE, flagged, "down")  # every slice flagged: the worst case


def _window(rng: np.random.Generator, kept: dict[str, float]) -> list[Score]:
    """One window's scores: complaints per (region, category) leaf, each kept with its
    region's probability `kept` (1: no outage there), rolled up to every slice."""
    leaves = {}
    for r, rs in REGIONS.items():
        for c, cs in CATEGORIES.items():
            orders = ORDERS * rs * cs
            leaves[(r, c)] = (float(rng.binomial(rng.poisson(orders * RATE), kept[r])), orders)
    slices: dict[SliceKey, tuple[dict[str, str], float, float]] = {}
    for (r, c), (n, d) in leaves.items():
        for labels in ({}, {"region": r}, {"category": c}):
            _, n0, d0 = slices.get(slice_key(labels), (labels, 0.0, 0.0))
            slices[slice_key(labels)] = (labels, n0 + n, d0 + d)
    return [_score(labels, n, d) for labels, n, d in slices.values()]


def _first(scores: list[Score], size: float | None) -> RootCauseHint:
    return slice_hints(attribute(scores, "down", per_unit=True, size=size), True, 3)[0]


def _first_slices(kept: dict[str, float], size: float | None) -> list[dict[str, str]]:
    rng = np.random.default_rng(13)
    return [_first(_window(rng, kept), size).details["slice"] for _ in range(DRAWS)]


def test_a_platform_wide_ratio_drop_names_no_slice_first() -> None:
    outage = dict.fromkeys(REGIONS, 9 / 54)
    firsts = _first_slices(outage, size=1.0)
    assert sum(bool(f) for f in firsts) <= 0.05 * DRAWS  # the family-wise rate, 5%


def test_without_the_count_test_chance_names_a_slice() -> None:
    """The symptom: lift alone names whichever slice chance emptied most (-100%)."""
    outage = dict.fromkeys(REGIONS, 9 / 54)
    assert sum(bool(f) for f in _first_slices(outage, size=None)) > 0.5 * DRAWS


def test_a_drop_concentrated_in_one_region_still_names_it() -> None:
    in_na = {**dict.fromkeys(REGIONS, 1.0), "NA": 0.1}
    firsts = _first_slices(in_na, size=1.0)
    assert sum(f == {"region": "NA"} for f in firsts) >= 0.95 * DRAWS


def test_bad_counts_are_never_disproportionate() -> None:
    assert not disproportionate(float("nan"), 30.0, 0.3, -1.0)
    assert not disproportionate(0.0, float("inf"), 0.3, -1.0)
    assert not disproportionate(0.0, 0.0, 0.3, -1.0)
    assert not disproportionate(-5.0, -1.0, 0.3, -1.0)
    assert not disproportionate(0.0, 40.0, 1.5, -1.0)
    assert disproportionate(99.0, 40.0, 0.3, 1.0)  # more than the total: all of it


def test_when_the_platform_did_not_fire_the_slices_own_detector_is_the_evidence() -> None:
    """No platform change to be proportional to: a flagged slice is named on its lift, as
    before (its detector, which knows its history, found it; one window's counts may not)."""
    usual = 54 * REGIONS["NA"]
    scores = [_score({}, 54 - 5, ORDERS, flagged=False),
              _score({"region": "NA"}, usual - 5, ORDERS * REGIONS["NA"])]
    assert _first(scores, size=1.0).details["slice"] == {"region": "NA"}
    assert not disproportionate(usual - 5, 54 - 5, usual / 54, -1.0)  # the counts alone: no
