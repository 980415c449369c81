"""The engine: ③ detect → ④ explain → ⑤ alert for closed windows, as plain code.

① ingest and the source half of ② run per partition in aggregate/source.py; the window merger
(aggregate/merger.py) decides when a window is complete. Both drivers wire the same three
pieces: replay (backtest/replay.py) with a source stage per partition of its files, the live
Faust runtime with a source stage per consumed partition and the merger and engine in the owner
of each metric, which persists their state in tables. Nothing here reads wall time, so
replaying the same input twice gives the same alerts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.aggregate.cube import WindowCube
from stream_guard.aggregate.points import PointBuilder
from stream_guard.aggregate.windows import OTHER, Accumulators
from stream_guard.alert.episodes import (
    Anomaly,
    EpisodeTracker,
    Transition,
    Update,
    group_slices,
)
from stream_guard.alert.record import SliceHistory, build_record
from stream_guard.config.calendar import Calendar
from stream_guard.config.rules import MetricRule
from stream_guard.detect.base import Detector
from stream_guard.detect.registry import build_detector
from stream_guard.explain.context import InterventionLog, calendar_hints
from stream_guard.explain.rootcause import RootCause
from stream_guard.explain.slices import (
    SliceShare,
    attribute,
    blend_mix,
    event_size,
    mix_shift,
    scope_share,
    slice_hints,
)
from stream_guard.stats import EngineStats
from stream_guard.types import (
    AlertRecord,
    Direction,
    MetricPoint,
    RootCauseHint,
    Score,
    SliceKey,
    slice_dict,
)

__all__ = ["Engine", "EngineStats", "MetricState", "SharedState"]

_LEAD_SHARE = 0.2
_LEAD_LIFT = 2.0
_OPEN_LEAD_SHARE = 0.5


def _is_lead(x: SliceShare, anchors: list[SliceKey]) -> bool:
    """The change is concentrated in the slice: it carries a fifth of the platform's deviation
    or more and moved at least twice as much as the platform (relative change), so it is not
    the shadow of an incident elsewhere (a slice overlapping one moves like the platform). An
    open episode's slice carrying most of the platform's deviation still leads it."""
    if x.slice in anchors and x.share >= _OPEN_LEAD_SHARE:
        return True
    return x.share >= _LEAD_SHARE and x.power >= x.share * math.log(_LEAD_LIFT)


@dataclass
class MetricState:
    """Everything the owner of one metric must keep to resume after a crash (picklable)."""

    builder: PointBuilder
    tracker: EpisodeTracker
    detectors: dict[SliceKey, Detector]
    last_dens: dict[SliceKey, tuple[float, float]]
    history: SliceHistory
    rca: RootCause


@dataclass(frozen=True, slots=True)
class _Group:
    """One incident's anomalous slices in a window: the tracker's input and the record's."""

    anomaly: Anomaly
    top: Score  # the anchor's score, else the platform's, else the strongest
    ordered: list[Score]  # moving the anomaly's way, most explanatory first
    hints: list[RootCauseHint]  # from the configured slices (explain/slices.py)
    mix: list[RootCauseHint]  # a ratio's mix shift, when the platform moved its way


@dataclass
class SharedState:
    """Owner state that spans metrics: the governance actions seen. (Co-moving metrics are
    the notifier's, which sees every owner's alerts: alert/correlate.py.)"""

    interventions: InterventionLog


class Engine:
    """③–⑤ for every metric of a rule set: closed windows in, alert records out.

    Drivers feed it closed, fully merged windows (`on_window`) in `close_order` and the
    validated governance actions their sources saw (`add_intervention`).
    """

    def __init__(
        self,
        rules: list[MetricRule],
        calendar: Calendar | None = None,
        on_score: Callable[[Score], None] | None = None,
        stats: EngineStats | None = None,
    ) -> None:
        self.rules = rules
        self.calendar = calendar or Calendar()
        self.on_score = on_score
        self.stats = stats or EngineStats()
        self.interventions = InterventionLog()
        self._builders = [PointBuilder(r) for r in rules]
        self._trackers = [EpisodeTracker(r.metric, r.rule_id, r.alert) for r in rules]
        self._detectors: dict[tuple[int, SliceKey], Detector] = {}
        self._last_dens: list[dict[SliceKey, tuple[float, float]]] = [{} for _ in rules]
        self._history = [SliceHistory(int(r.window.total_seconds() * 1000)) for r in rules]
        self._rca = [RootCause.for_rule(r) for r in rules]

    def add_intervention(self, ts_ms: int, fields: Mapping[str, Any]) -> None:
        """A validated governance action (kept once per action id)."""
        self.interventions.add(ts_ms, fields)

    def close_order(self, m: int, start_ms: int) -> tuple[int, int, int]:
        """The order windows are handed to `on_window` when several close at once: by the event
        time at which they became closable, then by metric. An owner's alert records come out in
        this order, so replay and the live owner (which close in different batches) must agree
        on it. (No result depends on it across metrics any more: co-moving metrics, which
        looked at other metrics' windows closed before, are the notifier's since session 9.)"""
        rule = self.rules[m]
        end = start_ms + int(rule.window.total_seconds() * 1000)
        return end + int(rule.lateness.total_seconds() * 1000), m, start_ms

    # ③-⑤ the owner of a metric ---------------------------------------------------------------
    def on_window(
        self, m: int, start_ms: int, slices: Accumulators, cube: WindowCube | None = None
    ) -> list[AlertRecord]:
        """A closed, fully merged window of metric `m` and its cube, if complete (the leaves
        and sellers the root cause needs: aggregate/cube.py): detect, explain, update the
        episode."""
        rule = self.rules[m]
        self.stats.windows_closed[rule.metric] += 1
        builder = self._builders[m]
        counts = builder.folded, builder.admitted, builder.bound.evicted
        points = builder.build(start_ms, slices)
        self._rca[m].observe(cube, builder.has_series, builder.single_series())
        self.stats.count_series(rule.metric, counts, builder)
        for key in builder.forgotten:  # long idle or evicted (aggregate/bounds.py): state goes
            self._detectors.pop((m, key), None)
            self._last_dens[m].pop(key, None)
        scores = [self._score(m, rule, p) for p in points]
        if self.on_score is not None:
            for s in scores:
                self.on_score(s)
        self.stats.points[rule.metric] += len(points)
        end_ms = start_ms + int(rule.window.total_seconds() * 1000)
        firing = [s for s in scores if s.anomalous]
        self.stats.anomalous_points[rule.metric] += len(firing)
        tracker = self._trackers[m]
        window = (start_ms, end_ms)
        groups = self._explain(m, rule, scores, firing, window, tracker.anchors())
        self._remember_mix(m, points)
        updates = tracker.observe(end_ms, [g.anomaly for g in groups.values()])
        keep = {(), *tracker.anchors(), *(s.point.slice for s in firing)}
        self._history[m].observe(end_ms, scores, keep)
        records = [self._record(m, u, scores, groups, window) for u in updates]
        self._rca[m].settle(normal=not firing)  # the leaves and sellers learn normal windows
        return records

    def _record(
        self, m: int, update: Update, scores: list[Score],
        groups: dict[SliceKey, _Group], window: tuple[int, int],
    ) -> AlertRecord:
        """The record of one episode update; a resolution lists no slices and no hints."""
        rule, ep = self.rules[m], update.episode
        group = None if update.lead is None else groups[update.lead]
        fallback = None if group is None else group.top
        lead = next((s for s in scores if s.point.slice == ep.slice), fallback)
        hints = [] if group is None else self._hints(m, update, scores, group, window)
        if update.reason == Transition.RESOLVED:
            self._rca[m].forget(ep.episode_id)
        record = build_record(rule, ep, update.reason, lead, window,
                              [] if group is None else group.ordered, hints,
                              self._history[m])
        self.stats.alerts[(rule.metric, ep.severity, record["status"])] += 1
        return record

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
            and not any(v == OTHER for _, v in p.slice)  # the junk drawer: shares, no alerts
        )
        return Score(p, score, expected, anomalous, direction)

    def _explain(
        self, m: int, rule: MetricRule, scores: list[Score], firing: list[Score],
        window: tuple[int, int], anchors: list[SliceKey],
    ) -> dict[SliceKey, _Group]:
        """The window's anomalous slices grouped by incident (`group_slices`: the open
        episodes' slices and the slices the change is concentrated in), each explained."""
        if not firing:
            return {}
        per_unit = rule.value in ("ratio", "mean")
        counted = rule.numerator is not None and rule.numerator.aggregate == "count"
        size = event_size(scores, rule.value, counted)  # disproportionate given the counts
        shares = {d: attribute(scores, d, per_unit, size)
                  for d in dict.fromkeys(s.direction for s in firing)}
        rank = {x.slice: i for found in shares.values() for i, x in enumerate(found)}
        ranked = sorted(firing, key=lambda s: (rank.get(s.point.slice, len(rank)), -s.score))
        leads = [(x.slice, d) for d, found in shares.items() for x in found
                 if _is_lead(x, anchors)]
        by_slice = {s.point.slice: s for s in firing}
        grouped = group_slices([(s.point.slice, s.direction) for s in ranked], leads, anchors)
        groups = {anchor: self._explain_group(m, rule, scores, [by_slice[k] for k in keys],
                                              anchor, shares, window)
                  for anchor, keys in grouped.items()}
        return groups

    def _explain_group(
        self, m: int, rule: MetricRule, scores: list[Score], members: list[Score],
        anchor: SliceKey, shares: dict[Direction, list[SliceShare]], window: tuple[int, int],
    ) -> _Group:
        """One incident's slices in this window: its anomaly, slices in order, and hints."""
        glob = next((s for s in members if not s.point.slice), None)
        top = next((s for s in members if s.point.slice == anchor), glob) or members[0]
        direction = top.direction
        same_way = [s for s in members if s.direction == direction]
        mine = {s.point.slice for s in same_way}
        own_shares = [x for x in shares[direction] if x.slice in mine]
        platform = glob is not None and glob.direction == direction
        hints = slice_hints(own_shares, platform, rule.explain.max_hints)
        per_unit = rule.value in ("ratio", "mean")
        mix = self._mix_hints(m, rule, scores, direction) if platform and per_unit else []
        rank = {x.slice: i for i, x in enumerate(own_shares)}
        ordered = sorted(same_way, key=lambda s: (bool(s.point.slice),
                                                  rank.get(s.point.slice, len(rank)), -s.score))
        score = max(s.score for s in same_way)
        severity = rule.alert.severity.of(score) or "warning"
        return _Group((severity, score, anchor, direction), top, ordered, hints, mix)

    def _hints(
        self, m: int, update: Update, scores: list[Score], group: _Group,
        window: tuple[int, int],
    ) -> list[RootCauseHint]:
        """An episode update's hints: where (the leaf cube's elements when it opens or
        escalates, reused by its later records; else the configured slices'), which sellers,
        then the causes whose scope fits where: interventions, calendar. (Other metrics moving
        at the same time are linked by the notifier, across owners: alert/correlate.py.)"""
        rule, ep, rca = self.rules[m], update.episode, self._rca[m]
        direction = group.anomaly[3]
        if update.reason in (Transition.NEW, Transition.ESCALATED):
            found = rca.localise(scores, ep.slice, direction) or []
            seller = rca.seller_hint(scores, direction)
            rca.remember(ep.episode_id, found + ([seller] if seller else []))
        where = rca.recall(ep.episode_id) or []
        slices = [h for h in where if h.kind == "slice"] or group.hints
        if all(h.details.get("effect") == "broad" for h in slices):
            slices = group.mix + slices  # the mix moved the rate, no slice's rate did
        causes = self._cause_hints(m, ep.slice, direction)
        broad = all(h.details.get("effect") == "broad" for h in slices)
        hints = causes + slices if broad else slices + causes  # no slice: the cause leads
        hints += [h for h in where if h.kind != "slice"]
        focus = slices[0].details["slice"] if slices else slice_dict(ep.slice)
        per_unit = rule.value in ("ratio", "mean")
        lookback = int(rule.explain.interventions_lookback.total_seconds() * 1000)
        inside = scope_share(scores, direction, per_unit)  # the change inside a hint's scope
        hints += self.interventions.hints(focus, window[0], window[1], lookback, inside)[:2]
        hints += calendar_hints(self.calendar, focus, *window, inside)[:2]
        return hints

    def _cause_hints(self, m: int, key: SliceKey, direction: Direction
                     ) -> list[RootCauseHint]:
        """A ratio's drop: its numerator against its own usual count (detect/rate.py)."""
        cause = getattr(self._detectors.get((m, key)), "cause", None)
        if direction != "down" or cause is None:
            return []
        return [RootCauseHint("ratio", cause.summary, cause.details())]

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
        if self.rules[m].value in ("ratio", "mean"):  # a slow baseline: a shift lasts hours
            self._last_dens[m] = dict(blend_mix(self._last_dens[m], {
                p.slice: (p.numerator, p.denominator) for p in points if len(p.slice) == 1}))

    # state, for the live runtime's tables -------------------------------------------------
    def metric_state(self, m: int) -> MetricState:
        detectors = {key: det for (i, key), det in self._detectors.items() if i == m}
        return MetricState(self._builders[m], self._trackers[m], detectors, self._last_dens[m],
                           self._history[m], self._rca[m])

    def restore_metric_state(self, m: int, state: MetricState) -> None:
        self._builders[m] = state.builder
        self._trackers[m] = state.tracker
        self._last_dens[m] = state.last_dens
        self._history[m] = state.history
        self._rca[m] = state.rca
        for key in [k for k in self._detectors if k[0] == m]:
            del self._detectors[key]
        self._detectors.update({(m, key): det for key, det in state.detectors.items()})

    def shared_state(self) -> SharedState:
        return SharedState(self.interventions)

    def restore_shared_state(self, state: SharedState) -> None:
        self.interventions = state.interventions

    def series_count(self) -> int:
        return len(self._detectors)
