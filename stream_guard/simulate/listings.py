"""Listings (the denominator of violation_rate) and the violations found among them.

Violations are drawn per listing and follow it by seconds (an automatic rule) to minutes (a
buyer report or a manual review). A violation incident multiplies the probability inside its
slice; the extra violations carry the incident's signature: a rule launch adds `source: rule`
findings, a counterfeit wave adds buyer-reported `counterfeit` ones.
"""

from __future__ import annotations

import numpy as np

from stream_guard.simulate.catalog import (
    LISTING_CATEGORY_MIX,
    LISTING_TIER_MIX,
    LISTINGS_PER_DAY,
    POLICIES,
    POLICY_MIX,
    SOURCE_MIX,
    SOURCES,
    violation_probability,
)
from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.seasonality import intensity
from stream_guard.simulate.sellers import SellerPool
from stream_guard.simulate.tables import Table, draw, poisson_arrivals, slice_mask

__all__ = ["generate_listings", "generate_violations"]

# Delay between listing and finding, per source (low, high) in ms: rules run at once, reports
# and reviews take minutes. Kept short so that a finding lands in its listing's hour window.
_DELAY_MS = {
    "rule": (1_000, 30_000),
    "report": (60_000, 600_000),
    "manual_review": (300_000, 900_000),
}
_SIGNATURE = {"rule_launch": ("rule", None), "counterfeit_wave": ("report", "counterfeit")}


def generate_listings(
    start_ms: int, days: int, scale: float, pool: SellerPool, rng: np.random.Generator
) -> Table:
    """New listings, sorted by time: a flatter daily cycle than orders, a quieter weekend."""
    rate = intensity(start_ms, days * 1440, LISTINGS_PER_DAY * scale, rng, depth=0.5, weekend=-0.05)
    ts_ms, region = poisson_arrivals(rate, start_ms, rng)
    category = draw(LISTING_CATEGORY_MIX, len(ts_ms), rng)
    tier = draw(LISTING_TIER_MIX, len(ts_ms), rng)
    columns = {
        "region": region,
        "category": category,
        "seller_tier": tier,
        "seller": pool.pick(region, category, tier, rng),
    }
    return Table("listings", ts_ms, columns).sorted()


def generate_violations(
    listings: Table, incidents: list[Incident], end_ms: int, rng: np.random.Generator
) -> Table:
    """Violations found among `listings` (column "listing" is the listing's row), by time."""
    base = violation_probability(listings["category"], listings["seller_tier"])
    probability, signature = base.copy(), np.full(len(listings), -1)
    for n, incident in enumerate(incidents):
        if incident.metric == "violation_rate":
            hit = slice_mask(listings, incident.slice)
            hit &= listings.window(incident.start_ms, incident.end_ms)
            probability[hit] *= incident.magnitude
            signature[hit] = n
    u = rng.random(len(listings))
    rows = np.flatnonzero(u < probability)
    source = draw(SOURCE_MIX, len(rows), rng)
    policy = draw(POLICY_MIX, len(rows), rng)
    # A finding above the base probability is one the incident caused: give it its signature.
    caused = (u[rows] >= base[rows]) & (signature[rows] >= 0)
    for n in np.unique(signature[rows][caused]).tolist():
        mark = caused & (signature[rows] == n)
        forced_source, forced_policy = _SIGNATURE.get(incidents[n].kind, (None, None))
        if forced_source is not None:
            source[mark] = SOURCES.index(forced_source)
        if forced_policy is not None:
            policy[mark] = POLICIES.index(forced_policy)
    ts_ms = listings.ts_ms[rows] + _delays(source, rng)
    columns = {
        "listing": rows,
        **{k: listings[k][rows] for k in ("region", "category", "seller_tier", "seller")},
        "policy": policy,
        "source": source,
    }
    violations = Table("violations", ts_ms, columns)
    return violations.take(violations.ts_ms < end_ms).sorted()


def _delays(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    low = np.array([_DELAY_MS[s][0] for s in SOURCES])[source]
    high = np.array([_DELAY_MS[s][1] for s in SOURCES])[source]
    return np.asarray(low + (rng.random(len(source)) * (high - low)).astype(np.int64))
