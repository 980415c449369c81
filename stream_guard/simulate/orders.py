"""Orders (the GMV metric) and the complaints buyers file about them (complaint_rate).

Orders arrive as a Poisson process following the daily and weekly cycle. GMV incidents act on
the process itself: a drop thins the orders of its slice (each survives with probability
`magnitude`), a spike adds a second process at (magnitude - 1) times the normal rate restricted
to the slice. Complaints are drawn per order, so thinning or adding orders leaves the complaint
rate untouched, and a complaint incident leaves GMV untouched: metrics only move when labelled.
The one exception is a `bots` spike (an order flood: bots or test orders that nobody complains
about): its slice's complaints stay at their usual count, so its complaint rate falls by the
spike's factor without any complaint being lost (a denominator surge, not an intake outage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_guard.simulate.catalog import (
    CATEGORY_MIX,
    CHANNEL_MIX,
    COMPLAINT_REASON_MIX,
    GMV_MEDIAN,
    GMV_SIGMA,
    ORDER_TIER_MIX,
    ORDERS_PER_DAY,
    PAYMENT_MIX,
    complaint_probability,
)
from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.seasonality import MINUTE_MS, intensity
from stream_guard.simulate.sellers import SellerPool
from stream_guard.simulate.tables import Table, draw, draw_given, poisson_arrivals

__all__ = ["WeeklyShape", "generate_complaints", "generate_orders"]

BUYERS = 2_000_000
MIN_GMV = 0.5  # nothing sells for less than this
# Complaints follow their order by 5 s plus an exponential delay (mean 2 min), at most 20 min.
_COMPLAINT_MIN_DELAY_MS, _COMPLAINT_MEAN_DELAY_MS, _COMPLAINT_MAX_DELAY_MS = (
    5_000,
    120_000,
    1_200_000,
)


@dataclass(frozen=True, slots=True)
class WeeklyShape:
    """How orders differ at the weekend: level change and delay of the daily cycle."""

    weekend: float = 0.12
    shift_hours: float = 0.0


def generate_orders(
    start_ms: int,
    days: int,
    scale: float,
    incidents: list[Incident],
    pool: SellerPool,
    rng: np.random.Generator,
    weekly: WeeklyShape = WeeklyShape(),
) -> Table:
    """All orders of the run, sorted by time, with GMV incidents applied (a mix shift is the
    GMV spike of its slice: extra orders there, each with its usual complaint probability)."""
    rate = intensity(start_ms, days * 1440, ORDERS_PER_DAY * scale, rng,
                     weekend=weekly.weekend, weekend_shift_hours=weekly.shift_hours)
    spikes = [i for i in incidents if i.metric == "gmv" and i.direction == "up"]
    drops = [i for i in incidents if i.metric == "gmv" and i.direction == "down"]
    parts = [poisson_arrivals(rate, start_ms, rng)]
    for spike in spikes:
        first = (spike.start_ms - start_ms) // MINUTE_MS
        last = -((start_ms - spike.end_ms) // MINUTE_MS)  # ceiling division
        extra = rate[first:last] * (spike.magnitude - 1)
        parts.append(poisson_arrivals(extra, start_ms + first * MINUTE_MS, rng))
    origin = np.concatenate([np.full(len(ts), n - 1) for n, (ts, _) in enumerate(parts)])
    orders = _attributes(
        np.concatenate([ts for ts, _ in parts]), np.concatenate([r for _, r in parts]), pool, rng
    )
    keep = origin == -1
    for n, spike in enumerate(spikes):
        in_spike = spike.hit(orders)
        keep |= (origin == n) & in_spike
    survive = rng.random(len(orders))
    for drop in drops:
        hit = drop.hit(orders)
        keep &= ~(hit & (survive >= drop.magnitude))
    return orders.take(keep).sorted()


def _attributes(
    ts_ms: np.ndarray, region: np.ndarray, pool: SellerPool, rng: np.random.Generator
) -> Table:
    """Draw every order dimension, its seller, buyer and GMV."""
    n = len(ts_ms)
    category = draw(CATEGORY_MIX, n, rng)
    tier = draw(ORDER_TIER_MIX, n, rng)
    log_median = np.log(np.asarray(GMV_MEDIAN))[category]
    gmv = np.exp(log_median + np.asarray(GMV_SIGMA)[category] * rng.standard_normal(n))
    columns = {
        "region": region,
        "category": category,
        "seller_tier": tier,
        "payment_method": draw_given(PAYMENT_MIX, region, rng),
        "channel": draw_given(CHANNEL_MIX, region, rng),
        "seller": pool.pick(region, category, tier, rng),
        "buyer": rng.integers(0, BUYERS, size=n),
        "gmv": np.maximum(MIN_GMV, np.round(gmv, 2)),
    }
    return Table("orders", ts_ms, columns)


def generate_complaints(
    orders: Table, incidents: list[Incident], end_ms: int, rng: np.random.Generator
) -> Table:
    """Complaints about `orders` (column "order" is the order's row), sorted by time."""
    probability = complaint_probability(orders["category"], orders["seller_tier"])
    for incident in incidents:
        if incident.metric == "complaint_rate" and incident.effect != "mix":
            factor = incident.factor(orders.ts_ms)
            probability = np.where(incident.hit(orders), probability * factor, probability)
        elif incident.effect == "bots":  # orders x magnitude, complaints as before
            factor = incident.factor(orders.ts_ms)
            probability = np.where(incident.hit(orders), probability / factor, probability)
    rows = np.flatnonzero(rng.random(len(orders)) < probability)
    delay = _COMPLAINT_MIN_DELAY_MS + rng.exponential(_COMPLAINT_MEAN_DELAY_MS, size=len(rows))
    ts_ms = orders.ts_ms[rows] + np.minimum(delay, _COMPLAINT_MAX_DELAY_MS).astype(np.int64)
    columns = {
        "order": rows,
        **{k: orders[k][rows] for k in ("region", "category", "seller_tier", "seller")},
        "reason": draw(COMPLAINT_REASON_MIX, len(rows), rng),
    }
    complaints = Table("complaints", ts_ms, columns)
    return complaints.take(complaints.ts_ms < end_ms).sorted()
