"""The source stage: event-time sanity, duplicates and floods, the same in replay and live."""

from __future__ import annotations

from stream_guard.aggregate import source as source_module
from stream_guard.aggregate.points import PointBuilder
from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.arrival import MAX_SKEW_MS, arrival_times, is_future
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.stats import EngineStats
from tests.conftest import T0, order

MIN = 60_000
YEAR = 365 * 86_400_000


def _stage(rules: list[MetricRule], codec: Codec) -> tuple[SourceStage, list[DeadLetter]]:
    dead: list[DeadLetter] = []
    return SourceStage(rules, codec, EngineStats(), dead.append), dead


def test_an_event_dated_after_its_arrival_by_more_than_the_skew_is_a_dead_letter(
    rules: list[MetricRule], codec: Codec
) -> None:
    stage, dead = _stage(rules, codec)
    stage.ingest("orders", order(T0 + MAX_SKEW_MS, 1), "p:1", arrival_ms=T0)  # at the limit
    stage.ingest("orders", order(T0 + YEAR, 2), "p:2", arrival_ms=T0)
    stage.ingest("orders", order(T0 + YEAR, 3), "p:3", arrival_ms=None)  # no arrival: no check
    assert [(d.origin, d.reason) for d in dead] == [("p:2", "future_timestamp")]
    assert stage.stats.events["orders"] == 2


def test_a_repeated_event_id_is_dropped_and_counted(
    rules: list[MetricRule], codec: Codec
) -> None:
    stage, dead = _stage(rules, codec)
    for _ in range(3):
        stage.ingest("orders", order(T0, 1, gmv=50.0), "p:1", arrival_ms=T0)
    stage.ingest("orders", order(T0, 2, gmv=5.0), "p:2", arrival_ms=T0)
    _, partials = stage.take()
    gmv = next(i for i, r in enumerate(rules) if r.metric == "gmv")
    assert next(p for p in partials if p.metric_index == gmv).slices[()] == [55.0, 2.0]
    assert stage.stats.duplicates["orders"] == 2 and not dead


def test_the_dedup_memory_is_bounded(
    rules: list[MetricRule], codec: Codec, monkeypatch
) -> None:
    monkeypatch.setattr(source_module, "DEDUP_MAX", 100)
    stage, _ = _stage(rules, codec)
    for i in range(1_000):
        stage.ingest("orders", order(T0 + i * 1_000, i), f"p:{i}", arrival_ms=T0 + i * 1_000)
    assert len(stage._seen) <= 100


def test_the_dedup_table_stays_near_what_the_horizon_holds_and_still_drops_repeats(
    rules: list[MetricRule], codec: Codec, monkeypatch
) -> None:
    monkeypatch.setattr(source_module, "DEDUP_MIN", 64)
    stage, _ = _stage(rules, codec)
    within = 50  # ids an event's horizon holds
    step = stage.horizon_ms // within
    n = 100 * within
    for i in range(n):
        stage.ingest("orders", order(T0 + i * step, i), f"p:{i}", arrival_ms=T0 + i * step)
    assert len(stage._seen) <= source_module.DEDUP_GROWTH * (within + 1)  # not all n
    recent = n - within // 2  # inside the horizon: still a duplicate
    stage.ingest("orders", order(T0 + recent * step, recent), "p:again", arrival_ms=T0 + n * step)
    assert stage.stats.duplicates["orders"] == 1


def test_arrival_estimates_flag_a_lone_future_record_but_not_a_gap_or_a_sparse_end() -> None:
    def flagged(times: list[int]) -> list[int]:
        return [i for i, (t, a) in enumerate(arrival_times(times, lambda t: t))
                if is_future(t, a)]

    dense = [T0 + 100 * i for i in range(1_000)]
    assert flagged([*dense[:500], T0 + YEAR, *dense[500:]]) == [500]
    assert flagged([*dense, T0 + YEAR]) == [1_000]  # even as the very last record
    gap = dense[:500] + [t + 86_400_000 for t in dense[500:]]  # a day without data
    assert flagged(gap) == []
    sparse = [T0 + 3_600_000 * i for i in range(100)]  # one an hour, to the end
    assert flagged(sparse) == []


def test_a_flood_of_new_values_never_pushes_out_an_established_slice(
    rules: list[MetricRule],
) -> None:
    gmv = next(r for r in rules if r.metric == "gmv")
    builder = PointBuilder(gmv)
    eu, na = (("region", "EU"),), (("region", "NA"),)
    builder.build(T0, {(): [30.0, 3.0], eu: [20.0, 2.0], na: [10.0, 1.0]})  # NA: too little
    flood = {(("region", f"junk-{i}"),): [1.0, 1.0] for i in range(5_000)}
    points = builder.build(T0 + 15 * MIN, {(): [5_025.0, 5_003.0], eu: [25.0, 3.0], **flood})
    by_slice = {p.slice: p.value for p in points}
    assert by_slice[eu] == 25.0  # still its own series, with its own value
    assert by_slice[(("region", "other"),)] == 5_000.0
    assert len(by_slice) == 3 and builder.folded == 5_001


def test_a_warmed_source_decides_as_the_one_that_read_everything(
    rules: list[MetricRule], codec: Codec
) -> None:
    """A restart resumes mid-partition: re-reading what was reported before (`warm`) makes the
    later records late, duplicate or on time exactly as for a source that never stopped, and
    reports nothing of what it re-read."""
    before = [order(T0 + i * MIN, i, gmv=10.0) for i in range(30)]
    before.append("not json")  # a dead letter before the cut: not sent again
    after = [order(T0 + 3 * MIN, 3, gmv=10.0),  # a duplicate of a record before the cut
             order(T0 - 90 * MIN, 1_000, gmv=7.0),  # late against the watermark before the cut
             order(T0 + 31 * MIN, 31, gmv=1.0)]
    steady, _ = _stage(rules, codec)
    restarted, dead = _stage(rules, codec)
    for i, rec in enumerate(before):
        steady.ingest("orders", rec, f"p:{i}", arrival_ms=None)
    steady.take()
    restarted.warm(("orders", rec, f"p:{i}", None) for i, rec in enumerate(before))
    assert restarted.take() == (steady.aggregator.watermark_ms, [])
    assert not dead and restarted.stats == EngineStats()
    for i, rec in enumerate(after, len(before)):
        steady.ingest("orders", rec, f"p:{i}", arrival_ms=None)
        restarted.ingest("orders", rec, f"p:{i}", arrival_ms=None)
    assert restarted.take() == steady.take()
    assert restarted.stats.duplicates["orders"] == 1
    assert restarted.stats.late == {("orders", "gmv"): 1, ("orders", "complaint_rate"): 1}
