"""Listings (the denominator of violation_rate) and the violations found among them.

Violations are drawn per listing and follow it by seconds (an automatic rule) to minutes (a
buyer report or a manual review). A violation incident multiplies the probability inside its
slice; the extra violations carry the incident's signature: a rule launch adds `source: rule`
findings, a counterfeit wave adds buyer-reported `counterfeit` ones. A seller flood (opt-in,
scenarios.py) has a few sellers upload extra listings, most of them violating: the incident's
slice then moves because of those sellers alone.
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

__all__ = ["add_seller_floods", "generate_listings", "generate_violations"]

# Delay between listing and finding, per source (low, high) in ms: rules run at once, reports
# and reviews take minutes. Kept short so that a finding lands in its listing's hour window.
_DELAY_MS = {
    "rule": (1_000, 30_000),
    "report": (60_000, 600_000),
    "manual_review": (300_000, 900_000),
}
_SIGNATURE = {"rule_launch": ("rule", None), "counterfeit_wave": ("report", "counterfeit")}
FLOOD_VIOLATION = 0.6  # share of a flooding seller's listings that violate a policy
_FLOOD_SPLIT = (0.5, 0.3, 0.2)  # how the flood's listings spread over its sellers


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


def add_seller_floods(
    listings: Table, incidents: list[Incident], pool: SellerPool, rng: np.random.Generator
) -> Table:
    """`listings` plus the extra listings of each seller flood, sorted by time: enough that the
    slice's violations grow by the incident's `magnitude`, spread 50/30/20% over its sellers."""
    floods = [i for i in incidents if i.effect == "sellers" and i.metric == "violation_rate"]
    parts = [listings]
    for flood in floods:
        usual = slice_mask(listings, flood.slice) & listings.window(flood.start_ms, flood.end_ms)
        expected = violation_probability(listings["category"], listings["seller_tier"])[usual]
        count = round(float((flood.magnitude - 1) * expected.sum()) / FLOOD_VIOLATION)
        parts.append(_flood(flood, count, pool, rng))
    if len(parts) == 1:
        return listings
    columns = {k: np.concatenate([p[k] for p in parts]) for k in listings.columns}
    return Table(listings.topic, np.concatenate([p.ts_ms for p in parts]), columns).sorted()


def _flood(flood: Incident, count: int, pool: SellerPool, rng: np.random.Generator) -> Table:
    """`count` listings of the flood's sellers at uniform times in its window."""
    which = draw(_FLOOD_SPLIT[: len(flood.sellers)], count, rng)
    codes = np.array([pool.attributes(s) for s in flood.sellers], dtype=np.int8)[which]
    columns = {"region": codes[:, 0], "category": codes[:, 1], "seller_tier": codes[:, 2],
               "seller": np.asarray(flood.sellers)[which]}
    return Table("listings", rng.integers(flood.start_ms, flood.end_ms, size=count), columns)


def _affected(incident: Incident, probability: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """The violation probability of the listings an incident hits."""
    if incident.effect == "sellers":
        return np.full(len(probability), FLOOD_VIOLATION)
    return np.asarray(probability * incident.factor(ts_ms))


def generate_violations(
    listings: Table, incidents: list[Incident], end_ms: int, rng: np.random.Generator
) -> Table:
    """Violations found among `listings` (column "listing" is the listing's row), by time."""
    base = violation_probability(listings["category"], listings["seller_tier"])
    probability, signature = base.copy(), np.full(len(listings), -1)
    for n, incident in enumerate(incidents):
        if incident.metric == "violation_rate":
            hit = incident.hit(listings)
            probability[hit] = _affected(incident, probability[hit], listings.ts_ms[hit])
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
