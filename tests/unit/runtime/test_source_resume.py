"""A source re-reading its partition after a crash cuts its reports where they were cut before,
so that its owner drops the ones it merged and every event is counted once."""

from __future__ import annotations

import orjson

from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine
from stream_guard.ingest.codec import Codec
from stream_guard.runtime.owner import Owner
from stream_guard.runtime.reports import Report
from stream_guard.runtime.sources import SourcePool
from stream_guard.stats import EngineStats
from tests.conftest import order

T0 = 1_772_000_000_000  # 2026-02-25T06:13:20Z
EVENTS = [orjson.dumps(order(T0 + 1_000 * i, i, gmv=float(i))) for i in range(40)]


def _pool(rules: list[MetricRule], codec: Codec) -> SourcePool:
    return SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])


def _batch(pool: SourcePool, offsets: range) -> list[Report]:
    for o in offsets:
        pool.ingest("orders", 0, o, EVENTS[o], None)
    return [r for r in pool.reports(0) if r.metric == "gmv"]


def test_reports_say_which_offsets_they_cover_and_end_at_the_cuts(
    rules: list[MetricRule], codec: Codec
) -> None:
    pool = _pool(rules, codec)
    pool.resume("orders", 0, [9, 5, 30], 3)
    assert ("orders", 0) in pool and ("orders", 1) not in pool
    got = [(r.first_offset, r.next_offset) for r in _batch(pool, range(3, 12))]
    assert got == [(3, 5), (5, 9), (9, 12)]
    assert [(r.first_offset, r.next_offset) for r in _batch(pool, range(12, 15))] == [(12, 15)]


def test_crash_after_reports_before_commit_counts_every_event_once(
    rules: list[MetricRule], codec: Codec
) -> None:
    m = [r.metric for r in rules].index("gmv")
    sources = {"gmv": frozenset({"orders/0"})}
    exact = Owner(Engine(rules), sources, 10_000)
    exact.adopt("gmv", None, None, 0)
    for r in _batch(_pool(rules, codec), range(40)):
        exact.on_report(r)

    owner = Owner(Engine(rules), sources, 10_000)
    owner.adopt("gmv", None, None, 0)
    before = _pool(rules, codec)
    sent = [r for span in (range(0, 7), range(7, 13), range(13, 20)) for r in _batch(before, span)]
    for r in sent:  # all three reached the owner; only offsets < 7 were committed
        owner.on_report(r)
    after = _pool(rules, codec)  # the restarted worker resumes from offset 7
    after.resume("orders", 0, [r.next_offset for r in sent if r.next_offset > 7], 7)
    for r in _batch(after, range(7, 40)):
        owner.on_report(r)

    assert owner.mergers[m].state.open == exact.mergers[m].state.open
    assert owner.engine.stats.reports[("gmv", "duplicate")] == 2
    assert owner.engine.stats.reports[("gmv", "overlapping")] == 0


def test_a_resumed_source_expects_its_start_and_then_the_next_offset(
    rules: list[MetricRule], codec: Codec
) -> None:
    """What `SourceAgent` compares each delivered offset with: below it is a redelivery, above
    it a gap read back from the log (runtime/agents.py)."""
    pool = _pool(rules, codec)
    assert pool.expected("orders", 0) is None
    pool.resume("orders", 0, [], 7)
    assert pool.expected("orders", 0) == 7
    _batch(pool, range(7, 12))
    assert pool.expected("orders", 0) == 12
