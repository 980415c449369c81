"""The generated feeders aggregate exactly as the plain rule (`slice_keys`, `increments`) says."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from stream_guard.aggregate.plan import compile_plans, is_cube_key, slice_keys
from stream_guard.aggregate.windows import Partial, WindowAggregator
from stream_guard.config.rules import MetricRule
from tests.conftest import T0

MIN = 60_000


class ReferenceAggregator:
    """The aggregation rule written plainly, one contribution and one slice key at a time."""

    def __init__(self, rules: list[MetricRule]) -> None:
        self.rules, self.plans = rules, compile_plans(rules)
        self.open: list[dict[int, dict[Any, list[float]]]] = [{} for _ in rules]
        self.seen: list[int] = []
        self.late: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[str] = Counter()
        self.leaves: dict[tuple[int, int], set[Any]] = {}  # leaves admitted per window

    def add(self, topic: str, ts: int, obj: dict[str, Any]) -> None:
        self.seen.append(ts)
        watermark = sorted(self.seen)[-3:][0]  # the 3rd largest event time (robust)
        for c in self.plans.get(topic, ()):
            if c.where and not c.matches(obj):
                continue
            m, rule = c.metric_index, self.rules[c.metric_index]
            start = ts - ts % c.width_ms
            end = start + c.width_ms + int(rule.lateness.total_seconds() * 1000)
            if end <= watermark:
                self.late[(topic, rule.metric)] += 1
                continue
            bucket = self.open[m].setdefault(start, {})
            leaves = self.leaves.setdefault((m, start), set())
            a, b = c.increments(obj)
            for key in slice_keys(c, obj):
                if is_cube_key(key):  # leaves: max_series per window, then the all-other leaf
                    if key[0][0].startswith("#") and key not in leaves:
                        if len(leaves) >= rule.max_series:
                            key = tuple((d, "other") for d, _ in key)
                        else:
                            leaves.add(key)
                elif key not in bucket and _slices(bucket) >= 10 * rule.max_series:
                    self.dropped[rule.metric] += 1
                    key = tuple((d, "other") for d, _ in key)
                acc = bucket.setdefault(key, [0.0, 0.0])
                acc[0] += a
                acc[1] += b

    def take_open(self) -> list[Partial]:
        out = [Partial(m, s, acc) for m, w in enumerate(self.open) for s, acc in sorted(w.items())]
        for w in self.open:
            w.clear()
        self.leaves.clear()
        return out


def _slices(bucket: dict[Any, list[float]]) -> int:
    """Slices of a window, leaves and sellers aside (they have their own caps)."""
    return sum(not is_cube_key(k) for k in bucket)


def _event(rng: random.Random, topic: str) -> dict[str, Any]:
    """Mostly ordinary values; sometimes a missing or non-string dimension, which slices by
    its str() (1, True and "1" are different slices; a missing one is "(none)")."""
    odd = [None, 1, True, 1.0, "1", "True", "EU"]

    def pick(common: list[Any]) -> Any:
        return rng.choice(odd) if rng.random() < 0.1 else rng.choice(common)

    event: dict[str, Any] = {
        "region": pick(["EU", "NA", "APAC"]), "category": pick(["toys", "home", "books"]),
        "seller_tier": pick(["gold", "new"]), "payment_method": pick(["card", "wallet"]),
        "channel": pick(["app", "web"]), "gmv": rng.choice([0.1, 2.5, 7, 1e-3, 12.75]),
        "decision": pick(["approved", "rejected"]), "flagged_bad": pick([True, False]),
    }
    for name in rng.sample(sorted(event), 2):
        if rng.random() < 0.1 and name != "gmv":
            del event[name]
    return event


def _snapshot(parts: list[Partial]) -> list[tuple[Any, ...]]:
    # list(items()): the order slices were first seen matters too (max_series admits by it);
    # leaves and sellers have caps of their own: their order does not matter
    return [(p.metric_index, p.window_start_ms,
             [(k, v) for k, v in p.slices.items() if not is_cube_key(k)],
             {k: v for k, v in p.slices.items() if is_cube_key(k)}) for p in parts]


@pytest.mark.parametrize("max_series", [5000, 2, 1])
def test_feeders_match_the_reference_rule(rules: list[MetricRule], max_series: int) -> None:
    rules = [r.model_copy(update={"max_series": max_series}) for r in rules]
    fast, ref = WindowAggregator(rules), ReferenceAggregator(rules)
    rng = random.Random(max_series)
    topics = ["orders", "complaints", "listings", "violations", "seller_onboarding",
              "governance_actions"]
    ts = T0
    for i in range(4000):
        ts += rng.randrange(0, 4) * 15_000  # on the second: window ends and lateness get hit
        at = ts - rng.choice([0, 0, 0, 3 * MIN, 20 * MIN, 3 * 3600_000])  # some arrive late
        topic = rng.choice(topics)
        event = _event(rng, topic)
        fast.add(topic, at, event)
        ref.add(topic, at, event)
        if i % 97 == 0 or i % 500 == 499:
            assert _snapshot(fast.take_open()) == _snapshot(ref.take_open())
    assert _snapshot(fast.take_open()) == _snapshot(ref.take_open())
    assert fast.late == ref.late and sum(ref.late.values()) > 0
    assert fast.dropped_series == ref.dropped
    assert (sum(ref.dropped.values()) > 0) == (max_series < 5000)


def test_late_counter_replaced_by_the_caller_is_the_one_counted(rules: list[MetricRule]) -> None:
    agg = WindowAggregator(rules)
    mine: Counter[tuple[str, str]] = Counter()
    agg.late = mine
    for _ in range(3):
        agg.add("orders", T0 + 30 * MIN, {"gmv": 1.0})
    agg.add("orders", T0, {"gmv": 1.0})  # its gmv window ended 15m + 2m lateness ago
    assert mine[("orders", "gmv")] == 1
