"""Seller onboarding decisions (bad_seller_onboarding_rate = flagged_bad / approved).

About 85% of applications are approved and 4% of the approved sellers are later flagged bad;
rejected ones are never flagged. A fraud ring multiplies the flagged share in its region. New
sellers get ids after the existing pool, in the order they are decided.
"""

from __future__ import annotations

import numpy as np

from stream_guard.simulate.catalog import (
    APPROVAL_RATE,
    BAD_SELLER_RATE,
    CATEGORY_MIX,
    ONBOARDING_PER_DAY,
    ONBOARDING_REGION_MIX,
)
from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.seasonality import intensity
from stream_guard.simulate.tables import Table, draw, poisson_arrivals

__all__ = ["generate_onboarding"]


def generate_onboarding(
    start_ms: int,
    days: int,
    scale: float,
    incidents: list[Incident],
    first_seller: int,
    rng: np.random.Generator,
) -> Table:
    """Onboarding decisions, sorted by time; reviews slow down at night and at the weekend."""
    rate = intensity(
        start_ms,
        days * 1440,
        ONBOARDING_PER_DAY * scale,
        rng,
        depth=0.6,
        weekend=-0.3,
        region_mix=ONBOARDING_REGION_MIX,
    )
    ts_ms, region = poisson_arrivals(rate, start_ms, rng)
    decisions = Table(
        "seller_onboarding",
        ts_ms,
        {"region": region, "category": draw(CATEGORY_MIX, len(ts_ms), rng)},
    ).sorted()
    approved = rng.random(len(decisions)) < APPROVAL_RATE
    probability = np.full(len(decisions), BAD_SELLER_RATE)
    for incident in incidents:
        if incident.metric == "bad_seller_onboarding_rate":
            hit = incident.hit(decisions)
            probability[hit] *= incident.factor(decisions.ts_ms[hit])
    flagged = approved & (rng.random(len(decisions)) < probability)
    seller = first_seller + np.arange(len(decisions))
    columns = {**decisions.columns, "approved": approved, "flagged_bad": flagged, "seller": seller}
    return Table("seller_onboarding", decisions.ts_ms, columns)
