"""The generated feeders aggregate exactly as the plain rule (`slice_keys`, `increments`) says."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from stream_guard.aggregate.cube import LEAF_CAP, WindowCube
from stream_guard.aggregate.plan import compile_plans, cube_entry, slice_keys
from stream_guard.aggregate.windows import Partial, WindowAggregator
from stream_guard.config.rules import MetricRule
from tests.conftest import T0

MIN = 60_000


class ReferenceAggregator:
    """The aggregation rule written plainly, one contribution and one slice key at a time."""

    def __init__(self, rules: list[MetricRule]) -> None:
        self.rules, self.plans = rules, compile_plans(rules)
        self.open: list[dict[int, dict[Any, list[float]]]] = [{} for _ in rules]
        self.cubes: list[dict[int, WindowCube]] = [{} for _ in rules]  # held until complete
        self.seen: list[int] = []
        self.late: Counter[tuple[str, str]] = Counter()
        self.dropped: Counter[str] = Counter()

    def watermark(self) -> int:
        return sorted(self.seen)[-3:][0]  # the 3rd largest event time (robust)

    def add(self, topic: str, ts: int, obj: dict[str, Any]) -> None:
        self.seen.append(ts)
        watermark = self.watermark()
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
            a, b = c.increments(obj)
            for key in slice_keys(c, obj):
                if key not in bucket and len(bucket) >= 10 * rule.max_series:
                    self.dropped[rule.metric] += 1
                    key = tuple((d, "other") for d, _ in key)
                _add(bucket, key, a, b)
            if c.cube:
                self._cube(c, m, start, obj, a, b)

    def _cube(self, c: Any, m: int, start: int, obj: dict[str, Any], a: float, b: float
              ) -> None:
        """Leaves: up to min(max_series, LEAF_CAP) per source window, then the all-other
        leaf; sellers: every one (these tests have fewer than the summary keeps)."""
        cube = self.cubes[m].setdefault(start, WindowCube())
        leaf, seller = cube_entry(c, obj)
        if leaf is not None:
            if leaf not in cube.leaves and len(cube.leaves) >= min(self.rules[m].max_series,
                                                                     LEAF_CAP):
                leaf = ("other",) * len(leaf)
            _add(cube.leaves, leaf, a, b)
        if seller is not None:
            _add(cube.sellers, seller, a, b)

    def take_open(self) -> list[Partial]:
        out = []
        for m, windows in enumerate(self.open):
            after = int((self.rules[m].window + self.rules[m].lateness).total_seconds() * 1000)
            due = {s: cube for s, cube in self.cubes[m].items() if s + after <= self.watermark()}
            for s in due:
                del self.cubes[m][s]
            out += [Partial(m, s, windows.get(s, {}), due.get(s))
                    for s in sorted(windows.keys() | due.keys())]
            windows.clear()
        return out


def _add(acc: dict[Any, list[float]], key: Any, a: float, b: float) -> None:
    cur = acc.setdefault(key, [0.0, 0.0])
    cur[0] += a
    cur[1] += b


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
        "seller_id": pick(["s-1", "s-2", "s-3"]),
    }
    for name in rng.sample(sorted(event), 2):
        if rng.random() < 0.1 and name != "gmv":
            del event[name]
    return event


def _snapshot(parts: list[Partial]) -> list[tuple[Any, ...]]:
    # list(items()): the order slices were first seen matters too (max_series admits by it);
    # leaves and sellers have caps of their own: their order does not matter
    return [(p.metric_index, p.window_start_ms, list(p.slices.items()),
             None if p.cube is None else (dict(p.cube.leaves), dict(p.cube.sellers)))
            for p in parts]


@pytest.mark.parametrize("max_series", [5000, 2, 1])
def test_feeders_match_the_reference_rule(rules: list[MetricRule], max_series: int) -> None:
    rules = [r.model_copy(update={"max_series": max_series, "explain": r.explain.model_copy(
        update={"localize": True})}) for r in rules]  # the leaf cube: opt-in
    fast, ref = WindowAggregator(rules), ReferenceAggregator(rules)
    rng = random.Random(max_series)
    topics = ["orders", "complaints", "listings", "violations", "seller_onboarding",
              "governance_actions"]
    ts, cubes = T0, 0
    for i in range(4000):
        ts += rng.randrange(0, 4) * 15_000  # on the second: window ends and lateness get hit
        at = ts - rng.choice([0, 0, 0, 3 * MIN, 20 * MIN, 3 * 3600_000])  # some arrive late
        topic = rng.choice(topics)
        event = _event(rng, topic)
        fast.add(topic, at, event)
        ref.add(topic, at, event)
        if i % 97 == 0 or i % 500 == 499:
            parts = fast.take_open()
            assert _snapshot(parts) == _snapshot(ref.take_open())
            cubes += sum(p.cube is not None and bool(p.cube.leaves and p.cube.sellers)
                         for p in parts)
    assert _snapshot(fast.take_open()) == _snapshot(ref.take_open())
    assert cubes > 10  # leaves and sellers handed over, once per window
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
