"""Which sellers carry a change: named when they hold most of it, or when the platform
without them did not move beyond its counting noise (the platform's change is noisy too)."""

from __future__ import annotations

from stream_guard.explain.sellers import SellerBaseline, carrying_sellers

SELLERS = [f"s{i:02d}" for i in range(25)]


def _baseline() -> SellerBaseline:
    """25 sellers with one event per window each."""
    base = SellerBaseline(half_life=1.0, capacity=100)
    for _ in range(30):
        base.learn(dict.fromkeys(SELLERS, 1.0))
    return base


def _carrying(window: dict[str, float]) -> list[str] | None:
    actual = sum(window.values())
    found = carrying_sellers(window, _baseline(), actual - 25.0, 25.0, up=True, top=3)
    return None if found is None else [s.seller for s in found.sellers]


def test_a_seller_under_half_the_change_is_named_when_the_rest_is_noise() -> None:
    # s00: +6 of the platform's +13; the other 24 sellers' +7 over 24 is counting noise.
    window = dict.fromkeys(SELLERS, 1.0) | {"s00": 7.0} | {s: 2.0 for s in SELLERS[1:8]}
    assert _carrying(window) == ["s00"]


def test_a_seller_is_not_named_when_the_rest_of_the_platform_moved_too() -> None:
    # s00: +11 of +35; the other 24 sellers doubled (48 over 24): a broad change.
    window = dict.fromkeys(SELLERS, 2.0) | {"s00": 12.0}
    assert _carrying(window) is None
