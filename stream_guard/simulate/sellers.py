"""A fixed population of sellers, each with one region, category and tier.

Orders and listings first draw their (region, category, tier) from the target mixes, then pick a
seller *of that group* weighted by popularity. The mixes therefore stay exact while seller ids
stay consistent (a seller never changes region or tier), which keeps Kafka keys realistic: a
few popular sellers and a long tail.

>>> pool = SellerPool.create(np.random.default_rng(0))
>>> rng = np.random.default_rng(1)
>>> region, category, tier = np.array([1, 1]), np.array([9, 0]), np.array([3, 0])
>>> picked = pool.pick(region, category, tier, rng)
>>> [pool.attributes(int(s)) for s in picked]
[(1, 9, 3), (1, 0, 0)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_guard.simulate.catalog import CATEGORIES, REGION_MIX, TIERS

__all__ = ["SellerPool"]

POOL_SIZE = 12_000
# Share of *sellers* per tier (most sellers are small); orders per tier follow ORDER_TIER_MIX.
_POOL_TIER_MIX = (0.10, 0.25, 0.35, 0.30)
_POPULARITY_SIGMA = 1.0  # lognormal spread of seller popularity within a group


@dataclass(frozen=True, slots=True)
class SellerPool:
    """Sellers sorted by group (region, category, tier); ids are shuffled so they reveal nothing.

    `cumulative` is the running sum of popularity over the whole pool and `group_start[g]` the
    first seller of group g, so a pick is one `searchsorted` for any number of events.
    """

    ids: np.ndarray  # seller number per pool position
    group_start: np.ndarray  # (groups + 1,) pool positions
    cumulative: np.ndarray  # (sellers + 1,) running popularity, starting at 0

    @classmethod
    def create(cls, rng: np.random.Generator, size: int = POOL_SIZE) -> SellerPool:
        mix = np.einsum(
            "r,c,t->rct", REGION_MIX, np.full(len(CATEGORIES), 1 / len(CATEGORIES)), _POOL_TIER_MIX
        ).ravel()
        counts = np.maximum(1, np.round(size * mix)).astype(np.int64)
        group_start = np.concatenate([[0], np.cumsum(counts)])
        popularity = rng.lognormal(0.0, _POPULARITY_SIGMA, size=int(group_start[-1]))
        cumulative = np.concatenate([[0.0], np.cumsum(popularity)])
        ids = rng.permutation(int(group_start[-1]))
        return cls(ids=ids, group_start=group_start, cumulative=cumulative)

    @property
    def size(self) -> int:
        return len(self.ids)

    def pick(
        self, region: np.ndarray, category: np.ndarray, tier: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """One seller number per event, from the event's group, weighted by popularity."""
        group = _group(region, category, tier)
        low = self.cumulative[self.group_start[group]]
        high = self.cumulative[self.group_start[group + 1]]
        target = low + rng.random(len(group)) * (high - low)
        position = np.searchsorted(self.cumulative, target, side="right") - 1
        # Guard the float edge where target == high: stay inside the group.
        position = np.clip(position, self.group_start[group], self.group_start[group + 1] - 1)
        return np.asarray(self.ids[position])

    def top_sellers(
        self, category: int, count: int, rng: np.random.Generator
    ) -> tuple[int, ...]:
        """The most popular seller of `count` groups of `category`, each in its own region
        (tiers drawn at random): sellers that share a category and nothing else."""
        regions = rng.choice(len(REGION_MIX), size=count, replace=False)
        tiers = rng.integers(len(TIERS), size=count)
        chosen = []
        for group in _group(regions, np.full(count, category), tiers).tolist():
            low, high = int(self.group_start[group]), int(self.group_start[group + 1])
            popularity = np.diff(self.cumulative[low : high + 1])
            chosen.append(int(self.ids[low + int(popularity.argmax())]))
        return tuple(chosen)

    def attributes(self, seller: int) -> tuple[int, int, int]:
        """(region, category, tier) codes of a seller number (for tests and debugging)."""
        position = int(np.flatnonzero(self.ids == seller)[0])
        group = int(np.searchsorted(self.group_start, position, side="right") - 1)
        per_region = len(CATEGORIES) * len(TIERS)
        return group // per_region, group % per_region // len(TIERS), group % len(TIERS)


def _group(region: np.ndarray, category: np.ndarray, tier: np.ndarray) -> np.ndarray:
    return np.asarray((region * len(CATEGORIES) + category) * len(TIERS) + tier)
