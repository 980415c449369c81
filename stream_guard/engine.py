"""The engine: ① ingest → ② aggregate → ③ detect → ④ explain → ⑤ alert, as plain code.

Both drivers run it: replay (backtest/replay.py) feeds it events as fast as the CPU allows; the
live Faust runtime feeds it per partition and persists its state in tables. The engine never
reads wall time: windows close on event time (the watermark), so replaying the same input twice
gives the same alerts.

The split between *sources* (decode, validate, pre-aggregate: `ingest` and `WindowAggregator`)
and the *owner* of a metric (`on_window`: points, detectors, explanations, episodes) is the
split the live runtime distributes: many partitions feed partials, one owner per metric merges
them and calls `on_window`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stream_guard.aggregate.points import PointBuilder
from stream_guard.aggregate.windows import Accumulators, WindowAggregator
from stream_guard.alert.episodes import Anomaly, EpisodeTracker
from stream_guard.alert.record import build_record
from stream_guard.config.calendar import Calendar
from stream_guard.config.rules import MetricRule
from stream_guard.detect.base import Detector
from stream_guard.detect.registry import build_detector
from stream_guard.errors import InvalidEvent
from stream_guard.explain.comoving import CoMoving
from stream_guard.explain.context import InterventionLog, calendar_hints
from stream_guard.explain.slices import attribute, mix_shift, slice_hints
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.types import (
    AlertRecord,
    Direction,
    MetricPoint,
    RootCauseHint,
    Score,
    SliceKey,
    slice_dict,
)

__all__ = ["INTERVENTIONS_TOPIC", "Engine", "EngineStats", "MetricState", "SharedState"]

INTERVENTIONS_TOPIC = "governance_actions"


@dataclass
class EngineStats:
    """Plain counters; the Prometheus bundle exports them."""

    events: Counter[str] = field(default_factory=Counter)  # topic
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, reason)
    late: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, metric)
    windows_closed: Counter[str] = field(default_factory=Counter)  # metric
    points: Counter[str] = field(default_factory=Counter)  # metric
    anomalous_points: Counter[str] = field(default_factory=Counter)  # metric
    alerts: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # metric, sev, status
    # live owners only (runtime/owner.py): source reports per (metric, outcome), and window
    # deltas that arrived for a window already closed (its source had been idle) per metric
    reports: Counter[tuple[str, str]] = field(default_factory=Counter)
    late_partials: Counter[str] = field(default_factory=Counter)


@dataclass
class MetricState:
    """Everything the owner of one metric must keep to resume after a crash (picklable)."""

    builder: PointBuilder
    tracker: EpisodeTracker
    detectors: dict[SliceKey, Detector]
    last_dens: dict[SliceKey, tuple[float, float]]


@dataclass
class SharedState:
    """Owner state that spans metrics: governance actions seen and recent anomalies."""

    interventions: InterventionLog
    comoving: CoMoving


class Engine:
    def __init__(
        self,
        rules: list[MetricRule],
        codec: Codec,
        calendar: Calendar | None = None,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        on_score: Callable[[Score], None] | None = None,
    ) -> None:
        self.rules = rules
        self.codec = codec
        self.calendar = calendar or Calendar()
        self.on_dead_letter = on_dead_letter or (lambda _dl: None)
        self.on_score = on_score
        self.stats = EngineStats()
        self.aggregator = WindowAggregator(rules)
        self.aggregator.late = self.stats.late
        self.interventions = InterventionLog()
        self._builders = [PointBuilder(r) for r in rules]
        self._trackers = [EpisodeTracker(r.metric, r.rule_id, r.alert) for r in rules]
        self._detectors: dict[tuple[int, SliceKey], Detector] = {}
        self._comoving = CoMoving()
        self._last_dens: list[dict[SliceKey, tuple[float, float]]] = [{} for _ in rules]

    # ① ingest ------------------------------------------------------------------------------
    def ingest(self, topic: str, value: Any, origin: str) -> None:
        """One record's value: a decoded JSON value, or bytes/str still to decode."""
        if isinstance(value, bytes | str):
            events, dead = self.codec.decode(topic, value, origin)
            for dl in dead:
                self._dead(dl)
            for ev in events:
                self._accept(topic, ev.ts_ms, ev.fields)
            return
        try:
            ts_ms = self.codec.validate(topic, value)
        except InvalidEvent as err:
            self._dead(self.codec.dead_letter(topic, origin, err, value))
            return
        self._accept(topic, ts_ms, value)

    def _accept(self, topic: str, ts_ms: int, fields: Mapping[str, Any]) -> None:
        self.stats.events[topic] += 1
        if topic == INTERVENTIONS_TOPIC:
            self.interventions.add(ts_ms, fields)
        self.aggregator.add(topic, ts_ms, fields)

    def _dead(self, dl: DeadLetter) -> None:
        self.stats.invalid[(dl.topic, dl.reason)] += 1
        self.on_dead_letter(dl)

    # ② close windows -------------------------------------------------------------------------
    def advance(self, final: bool = False) -> list[AlertRecord]:
        """Closes every window the watermark has passed (all complete ones when `final`)."""
        closable = sorted(self.aggregator.close(lateness=not final),
                          key=lambda p: self.close_order(p.metric_index, p.window_start_ms))
        records: list[AlertRecord] = []
        for partial in closable:
            records.extend(self.on_window(partial.metric_index, partial.window_start_ms,
                                          partial.slices))
        return records

    def close_order(self, m: int, start_ms: int) -> tuple[int, int, int]:
        """The order windows are handed to `on_window` when several close at once: by the event
        time at which they became closable, then by metric. Co-moving hints look at windows
        closed before, so replay and the live owner (which close in different batches) must
        agree on it."""
        rule = self.rules[m]
        end = start_ms + int(rule.window.total_seconds() * 1000)
        return end + int(rule.lateness.total_seconds() * 1000), m, start_ms

    # ③-⑤ the owner of a metric ---------------------------------------------------------------
    def on_window(self, m: int, start_ms: int, slices: Accumulators) -> list[AlertRecord]:
        """A closed, fully merged window of metric `m`: detect, explain, update the episode."""
        rule = self.rules[m]
        self.stats.windows_closed[rule.metric] += 1
        points = self._builders[m].build(start_ms, slices)
        scores = [self._score(m, rule, p) for p in points]
        if self.on_score is not None:
            for s in scores:
                self.on_score(s)
        self.stats.points[rule.metric] += len(points)
        end_ms = start_ms + int(rule.window.total_seconds() * 1000)
        firing = [s for s in scores if s.anomalous]
        self.stats.anomalous_points[rule.metric] += len(firing)
        anomaly, lead, hints, ordered = self._explain(m, rule, scores, firing, (start_ms, end_ms))
        self._remember_mix(m, points)
        tracker = self._trackers[m]
        reason = tracker.observe(end_ms, anomaly)
        if reason is None or tracker.current is None:
            return []
        ep = tracker.current
        lead_score = next((s for s in scores if s.point.slice == ep.slice), lead)
        resolved = reason == "resolved"
        record = build_record(rule, ep, reason, lead_score, (start_ms, end_ms),
                              [] if resolved else ordered, [] if resolved else hints)
        tracker.close_resolved()
        self.stats.alerts[(rule.metric, ep.severity, record["status"])] += 1
        return [record]

    def _score(self, m: int, rule: MetricRule, p: MetricPoint) -> Score:
        det = self._detectors.get((m, p.slice))
        if det is None:
            det = build_detector(rule.detector.type, rule.detector.params,
                                 rule.window.total_seconds())
            self._detectors[(m, p.slice)] = det
        x = p.features()
        score = det.score_one(x)
        expected = det.expect_one(x)
        det.learn_one(x)
        direction: Direction = "up" if expected is None or p.value >= expected else "down"
        anomalous = (
            expected is not None
            and score >= rule.alert.severity.warning
            and rule.direction in ("both", direction)
        )
        return Score(p, score, expected, anomalous, direction)

    def _explain(
        self, m: int, rule: MetricRule, scores: list[Score], firing: list[Score],
        window: tuple[int, int],
    ) -> tuple[Anomaly | None, Score | None, list[RootCauseHint], list[Score]]:
        if not firing:
            return None, None, [], []
        glob = next((s for s in firing if not s.point.slice), None)
        top = glob or max(firing, key=lambda s: s.score)
        direction = top.direction
        same_way = [s for s in firing if s.direction == direction]
        per_unit = rule.value in ("ratio", "mean")
        shares = attribute(scores, direction, per_unit)
        lead_slice = () if glob else (shares[0].slice if shares else top.point.slice)
        limit = rule.explain.max_hints
        hints = slice_hints(shares, glob is not None, limit)
        if glob is not None and per_unit and all(h.details.get("effect") == "broad" for h in hints):
            hints += self._mix_hints(m, rule, scores, direction)
        focus = hints[0].details["slice"] if hints else slice_dict(lead_slice)
        lookback = int(rule.explain.interventions_lookback.total_seconds() * 1000)
        hints += self.interventions.hints(focus, window[0], window[1], lookback)[:2]
        hints += calendar_hints(self.calendar, focus, *window)[:2]
        hints += self._comoving.hints(rule.metric, *window, focus)[:2]
        self._comoving.record(rule.metric, *window,
                              {s.point.slice: s.direction for s in same_way})
        rank = {s.slice: i for i, s in enumerate(shares)}
        ordered = sorted(same_way, key=lambda s: (bool(s.point.slice),
                                                  rank.get(s.point.slice, len(rank)), -s.score))
        severity = rule.alert.severity.of(max(s.score for s in same_way)) or "warning"
        score = max(s.score for s in same_way)
        return (severity, score, lead_slice, direction), top, hints, ordered

    def _mix_hints(
        self, m: int, rule: MetricRule, scores: list[Score], direction: Direction
    ) -> list[RootCauseHint]:
        current: dict[SliceKey, tuple[float, float]] = {
            s.point.slice: (s.point.numerator, s.point.denominator)
                   for s in scores if len(s.point.slice) == 1}
        hints: list[RootCauseHint] = []
        for dim in rule.dimensions:
            prev = {k: v for k, v in self._last_dens[m].items() if k[0][0] == dim}
            cur = {k: v for k, v in current.items() if k[0][0] == dim}
            hints += mix_shift(prev, cur, direction)
        return sorted(hints, key=lambda h: -h.details["share_gain"])[:2]

    def _remember_mix(self, m: int, points: list[MetricPoint]) -> None:
        if self.rules[m].value in ("ratio", "mean"):
            self._last_dens[m] = {p.slice: (p.numerator, p.denominator)
                                  for p in points if len(p.slice) == 1}

    # state, for the live runtime's tables -------------------------------------------------
    def metric_state(self, m: int) -> MetricState:
        detectors = {key: det for (i, key), det in self._detectors.items() if i == m}
        return MetricState(self._builders[m], self._trackers[m], detectors, self._last_dens[m])

    def restore_metric_state(self, m: int, state: MetricState) -> None:
        self._builders[m] = state.builder
        self._trackers[m] = state.tracker
        self._last_dens[m] = state.last_dens
        for key in [k for k in self._detectors if k[0] == m]:
            del self._detectors[key]
        self._detectors.update({(m, key): det for key, det in state.detectors.items()})

    def shared_state(self) -> SharedState:
        return SharedState(self.interventions, self._comoving)

    def restore_shared_state(self, state: SharedState) -> None:
        self.interventions = state.interventions
        self._comoving = state.comoving

    def series_count(self) -> int:
        return len(self._detectors)
