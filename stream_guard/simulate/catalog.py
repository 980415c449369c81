"""The shape of the simulated marketplace: dimension values, their mixes and the base rates.

Everything here is a constant or a pure function of constants, so the incident planner can pick
slices by their *expected* share before any traffic is drawn. Dimension values are stored as
small integer codes in the generated tables; the tuples below map codes back to names.

>>> round(sum(CATEGORY_MIX), 6), round(sum(REGION_MIX), 6)
(1.0, 1.0)
>>> round(gmv_share("category")["electronics"], 2)  # a fifth of orders, two fifths of GMV
0.39
>>> round(order_share("category")["collectibles"], 3)
0.01
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "APPROVAL_RATE",
    "BAD_SELLER_RATE",
    "CATEGORIES",
    "CATEGORY_MIX",
    "CHANNELS",
    "CHANNEL_MIX",
    "COMPLAINT_REASONS",
    "COMPLAINT_REASON_MIX",
    "GMV_MEDIAN",
    "GMV_SIGMA",
    "LISTINGS_PER_DAY",
    "LISTING_CATEGORY_MIX",
    "LISTING_TIER_MIX",
    "ONBOARDING_PER_DAY",
    "ONBOARDING_REGION_MIX",
    "ORDERS_PER_DAY",
    "ORDER_TIER_MIX",
    "PAYMENTS",
    "PAYMENT_MIX",
    "POLICIES",
    "POLICY_MIX",
    "REGIONS",
    "REGION_MIX",
    "REGION_PHASE_HOURS",
    "SOURCES",
    "SOURCE_MIX",
    "TIERS",
    "complaint_probability",
    "complaint_share",
    "gmv_share",
    "order_share",
    "violation_probability",
    "violation_share",
]

Mix = tuple[float, ...]

REGIONS = ("NA", "EU", "APAC", "LATAM", "MEA")
REGION_MIX: Mix = (0.35, 0.30, 0.20, 0.10, 0.05)
# Regions live in different time zones: each one's daily cycle is shifted by this many hours, so
# per-region seasonal profiles differ a little from the platform's (as they do in real life).
REGION_PHASE_HOURS: Mix = (1.5, -1.0, -2.5, 2.0, -1.5)

CATEGORIES = (
    "electronics", "fashion", "home", "beauty", "toys",
    "sports", "grocery", "books", "auto", "collectibles",
)  # fmt: skip
CATEGORY_MIX: Mix = (0.18, 0.22, 0.14, 0.11, 0.07, 0.08, 0.10, 0.05, 0.04, 0.01)
LISTING_CATEGORY_MIX: Mix = (0.15, 0.27, 0.14, 0.12, 0.07, 0.07, 0.06, 0.06, 0.04, 0.02)
# Order value is lognormal per category: median in platform currency and log-scale sigma.
GMV_MEDIAN: Mix = (110.0, 42.0, 58.0, 26.0, 32.0, 50.0, 24.0, 16.0, 65.0, 80.0)
GMV_SIGMA: Mix = (0.75, 0.65, 0.75, 0.55, 0.6, 0.7, 0.5, 0.45, 0.8, 1.0)

TIERS = ("gold", "silver", "bronze", "new")
ORDER_TIER_MIX: Mix = (0.30, 0.35, 0.25, 0.10)
LISTING_TIER_MIX: Mix = (0.22, 0.30, 0.30, 0.18)  # new sellers list a lot and sell little

PAYMENTS = ("card", "wallet", "bank_transfer", "cod")
# Rows follow REGIONS; cash on delivery exists mostly in MEA and APAC.
PAYMENT_MIX: tuple[Mix, ...] = (
    (0.70, 0.25, 0.05, 0.00),
    (0.55, 0.25, 0.20, 0.00),
    (0.35, 0.50, 0.05, 0.10),
    (0.60, 0.20, 0.15, 0.05),
    (0.35, 0.20, 0.10, 0.35),
)
CHANNELS = ("app", "web", "mini_program")
CHANNEL_MIX: tuple[Mix, ...] = (  # mini programs are an APAC thing
    (0.58, 0.40, 0.02),
    (0.55, 0.42, 0.03),
    (0.50, 0.22, 0.28),
    (0.65, 0.32, 0.03),
    (0.62, 0.35, 0.03),
)

ORDERS_PER_DAY = 110_000
LISTINGS_PER_DAY = 40_000
ONBOARDING_PER_DAY = 3_000
ONBOARDING_REGION_MIX: Mix = (0.25, 0.25, 0.28, 0.14, 0.08)  # growth markets sign up more
APPROVAL_RATE = 0.85
BAD_SELLER_RATE = 0.04  # share of approved sellers later flagged bad

COMPLAINT_RATE = 0.02
COMPLAINT_BY_CATEGORY: Mix = (1.3, 1.2, 0.9, 0.8, 1.0, 0.8, 0.7, 0.5, 1.1, 1.6)
COMPLAINT_BY_TIER: Mix = (0.6, 0.9, 1.2, 2.4)
COMPLAINT_REASONS = ("not_received", "not_as_described", "damaged", "fraud")
COMPLAINT_REASON_MIX: Mix = (0.35, 0.30, 0.25, 0.10)

VIOLATION_RATE = 0.03
VIOLATION_BY_CATEGORY: Mix = (1.3, 1.5, 0.7, 1.2, 1.0, 0.8, 0.5, 0.4, 0.9, 2.2)
VIOLATION_BY_TIER: Mix = (0.4, 0.7, 1.1, 2.0)
POLICIES = ("counterfeit", "prohibited_item", "misleading", "ip_infringement")
POLICY_MIX: Mix = (0.35, 0.15, 0.35, 0.15)
SOURCES = ("rule", "report", "manual_review")
SOURCE_MIX: Mix = (0.60, 0.25, 0.15)


def _normalised(base: float, by_a: Mix, mix_a: Mix, by_b: Mix, mix_b: Mix) -> np.ndarray:
    """A (len(a), len(b)) table of probabilities whose mix-weighted mean is exactly `base`."""
    table = np.outer(by_a, by_b)
    mean = float(np.asarray(mix_a) @ table @ np.asarray(mix_b))
    return base * table / mean


_COMPLAINT_P = _normalised(
    COMPLAINT_RATE, COMPLAINT_BY_CATEGORY, CATEGORY_MIX, COMPLAINT_BY_TIER, ORDER_TIER_MIX
)
_VIOLATION_P = _normalised(
    VIOLATION_RATE, VIOLATION_BY_CATEGORY, LISTING_CATEGORY_MIX, VIOLATION_BY_TIER,
    LISTING_TIER_MIX,
)  # fmt: skip


def complaint_probability(category: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Per-order probability of a complaint, by category and seller-tier codes (mean 2%)."""
    return np.asarray(_COMPLAINT_P[category, tier])


def violation_probability(category: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Per-listing probability of a violation, by category and seller-tier codes (mean 3%)."""
    return np.asarray(_VIOLATION_P[category, tier])


def _by_name(names: tuple[str, ...], weights: np.ndarray) -> dict[str, float]:
    return dict(zip(names, (weights / weights.sum()).tolist(), strict=True))


def order_share(dimension: str) -> dict[str, float]:
    """Expected share of orders per value of `dimension` (region, category, ..., channel)."""
    region = np.asarray(REGION_MIX)
    shares = {
        "region": (REGIONS, region),
        "category": (CATEGORIES, np.asarray(CATEGORY_MIX)),
        "seller_tier": (TIERS, np.asarray(ORDER_TIER_MIX)),
        "payment_method": (PAYMENTS, region @ np.asarray(PAYMENT_MIX)),
        "channel": (CHANNELS, region @ np.asarray(CHANNEL_MIX)),
    }
    names, weights = shares[dimension]
    return _by_name(names, weights)


def gmv_share(dimension: str) -> dict[str, float]:
    """Expected share of GMV per value of `dimension`; only category changes the order value."""
    if dimension != "category":
        return order_share(dimension)
    mean = np.asarray(GMV_MEDIAN) * np.exp(np.asarray(GMV_SIGMA) ** 2 / 2)
    return _by_name(CATEGORIES, np.asarray(CATEGORY_MIX) * mean)


def complaint_share(dimension: str) -> dict[str, float]:
    """Expected share of complaints per category or seller_tier (the rate's numerator)."""
    return _numerator_share(_COMPLAINT_P, CATEGORY_MIX, ORDER_TIER_MIX, dimension)


def violation_share(dimension: str) -> dict[str, float]:
    """Expected share of violations per category or seller_tier (the rate's numerator)."""
    return _numerator_share(_VIOLATION_P, LISTING_CATEGORY_MIX, LISTING_TIER_MIX, dimension)


def _numerator_share(
    probability: np.ndarray, category_mix: Mix, tier_mix: Mix, dimension: str
) -> dict[str, float]:
    events = np.asarray(category_mix)[:, None] * probability * np.asarray(tier_mix)[None, :]
    if dimension == "category":
        return _by_name(CATEGORIES, events.sum(axis=1))
    return _by_name(TIERS, events.sum(axis=0))
