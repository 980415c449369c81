"""The numbers behind a record: the episode so far (actual vs expected over its windows, the gap
in the metric's unit and per hour) and the slice's recent series, from the engine's bounded,
saved history."""

from __future__ import annotations

import pytest

from stream_guard.alert.episodes import Episode
from stream_guard.alert.record import SliceHistory, build_record
from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine, MetricState
from stream_guard.runtime.snapshot import ModelSnapshot, decode_model, encode_model
from stream_guard.types import AlertRecord, MetricPoint, Score, SliceKey

T0 = 1_772_633_700_000  # 2026-03-04T14:15:00Z
MIN = 60_000
WIN = 15 * MIN
EU: SliceKey = (("region", "EU"),)


def _rule(value: str = "sum", for_windows: int = 1) -> MetricRule:
    source = {"topic": "orders", "aggregate": "sum", "field": "gmv"}
    spec = {"source": source} if value in ("sum", "mean") else {
        "numerator": {"topic": "complaints", "aggregate": "count"},
        "denominator": {"topic": "orders", "aggregate": "count"}}
    return MetricRule.model_validate({
        "metric": "gmv", "unit": "USD", "value": value, **spec, "window": "15m",
        "dimensions": ["region"], "detector": {"type": "threshold", "lower": 1.0},
        "alert": {"route": "commerce-oncall", "for": for_windows},
    })


def _score(key: SliceKey, end: int, actual: float, expected: float | None) -> Score:
    point = MetricPoint("gmv", key, end - WIN, end, actual, actual, 100.0)
    return Score(point, 9.0, expected, True, "up")


# The platform's windows: one before the episode, then three anomalous ones (14:15-15:00).
WINDOWS = [(T0, 20_000.0, 19_000.0), (T0 + WIN, 30_000.0, 13_000.0),
           (T0 + 2 * WIN, 28_000.0, 13_500.0), (T0 + 3 * WIN, 27_100.0, 13_800.0)]


def _history(key: SliceKey = ()) -> SliceHistory:
    history = SliceHistory(WIN)
    for end, actual, expected in WINDOWS:
        history.observe(end, [_score(key, end, actual, expected)], {key})
    return history


def _build(rule: MetricRule, reason: str, started_ms: int = T0 + WIN) -> AlertRecord:
    end = WINDOWS[-1][0]
    episode = Episode("gmv", "f" * 16, "gmv-ep", (), "up", started_ms, "critical", 9.0)
    lead = _score((), end, *WINDOWS[-1][1:])
    return build_record(rule, episode, reason, lead, (end - WIN, end), [lead], [], _history())


def test_the_episode_so_far_sums_its_windows_and_gives_the_gap_per_hour() -> None:
    so_far = _build(_rule(), "escalated").so_far
    assert so_far is not None
    assert so_far.since.isoformat() == "2026-03-04T14:15:00+00:00"
    assert (so_far.windows, so_far.duration_s, so_far.aggregate) == (3, 2700.0, "sum")
    assert (so_far.actual, so_far.expected) == (85_100.0, 40_300.0)
    assert so_far.gap == 44_800.0
    assert so_far.gap_per_hour == pytest.approx(59_733.333333)


def test_the_windows_before_an_episode_opened_count_from_the_first_anomalous_one() -> None:
    so_far = _build(_rule(for_windows=2), "new", started_ms=T0 + 2 * WIN).so_far
    assert so_far is not None and so_far.windows == 3 and so_far.actual == 85_100.0


def test_a_rate_is_averaged_and_has_no_gap_per_hour() -> None:
    so_far = _build(_rule("ratio"), "slices_changed").so_far
    assert so_far is not None and so_far.aggregate == "mean"
    assert so_far.actual == pytest.approx(85_100 / 3) and so_far.gap_per_hour is None


def test_new_and_escalated_records_carry_the_series_and_the_unit() -> None:
    record = _build(_rule(), "new")
    assert record.unit == "USD"
    assert [(p.actual, p.expected) for p in record.series] == [w[1:] for w in WINDOWS]
    assert _build(_rule(), "slices_changed").series == ()


def test_a_resolution_carries_no_numbers_and_old_records_keep_their_bytes() -> None:
    record = _build(_rule(), "resolved")
    assert record.so_far is None and record.series == ()
    assert b"so_far" not in record.to_json() and b"series" not in record.to_json()


def test_history_forgets_slices_it_no_longer_watches_and_keeps_a_day() -> None:
    history = _history(EU)
    history.observe(T0 + 4 * WIN, [_score(EU, T0 + 4 * WIN, 1.0, 1.0)], {()})
    assert history.series == {}
    history = SliceHistory(WIN)
    for i in range(200):
        history.observe(T0 + i * WIN, [_score((), T0 + i * WIN, i, i)], {()})
    assert len(history.recent(())) == 96 and history.recent(())[0][0] == T0 + 104 * WIN


def test_the_history_is_part_of_the_saved_model() -> None:
    engine = Engine([_rule()])
    engine.restore_metric_state(0, _replace_history(engine, _history()))
    blob = encode_model(ModelSnapshot(engine.metric_state(0), engine.shared_state(), None, 1))
    restored = Engine([_rule()])
    restored.restore_metric_state(0, decode_model(blob).metric)
    assert restored.metric_state(0).history == _history()


def _replace_history(engine: Engine, history: SliceHistory) -> MetricState:
    state = engine.metric_state(0)
    state.history = history
    return state


def _engine_rule() -> MetricRule:
    return MetricRule.model_validate({
        "metric": "gmv", "unit": "USD", "value": "sum",
        "source": {"topic": "orders", "aggregate": "sum", "field": "gmv"}, "window": "15m",
        "detector": {"type": "threshold", "upper": 1000.0},
        "alert": {"route": "commerce-oncall", "resolve_after": 2,
                  "severity": {"warning": 4, "critical": 20}},
    })


# The platform's GMV per window: quiet, a spike that escalates, quiet again.
VALUES = [800.0] * 6 + [1200.0, 1500.0, 3000.0, 2800.0] + [800.0] * 4


def _feed(engine: Engine, windows: range) -> list[AlertRecord]:
    out: list[AlertRecord] = []
    for i in windows:
        out += engine.on_window(0, T0 + i * WIN, {(): [VALUES[i], 100.0]})
    return out


def test_an_engine_gives_the_episode_so_far_and_a_restart_gives_the_same_records() -> None:
    straight = _feed(Engine([_engine_rule()]), range(len(VALUES)))
    assert [r.reason for r in straight] == ["new", "escalated", "resolved"]
    escalated = straight[1].so_far
    assert escalated is not None and escalated.windows == 3
    assert (escalated.actual, escalated.expected, escalated.gap) == (5700.0, 3000.0, 2700.0)
    assert escalated.gap_per_hour == 3600.0 and escalated.since == straight[0].window_start
    assert [p.actual for p in straight[1].series] == VALUES[:9]
    first = Engine([_engine_rule()])
    before = _feed(first, range(7))
    blob = encode_model(ModelSnapshot(first.metric_state(0), first.shared_state(), None, 1))
    restarted = Engine([_engine_rule()])
    restarted.restore_metric_state(0, decode_model(blob).metric)
    assert before + _feed(restarted, range(7, len(VALUES))) == straight


def test_a_slice_episode_carries_the_whole_metric_beside_its_slice() -> None:
    history = _history()
    history.observe(T0 + 4 * WIN, [_score((), T0 + 4 * WIN, 9.0, 9.0),
                                   _score(EU, T0 + 4 * WIN, 5.0, 2.0)], {(), EU})
    episode = Episode("gmv", "f" * 16, "gmv-ep", EU, "up", T0 + 4 * WIN, "warning", 9.0)
    lead = _score(EU, T0 + 4 * WIN, 5.0, 2.0)
    record = build_record(_rule(), episode, "new", lead, (T0 + 3 * WIN, T0 + 4 * WIN), [lead],
                          [], history)
    assert [p.actual for p in record.series] == [5.0]
    assert [p.actual for p in record.metric_series] == [w[1] for w in WINDOWS] + [9.0]
    assert _build(_rule(), "new").metric_series == ()  # a platform episode: its own series
