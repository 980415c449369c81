"""③-⑤ on the live side: the owner of a metric merges the sources' deltas and closes windows.

The partials topic is keyed by metric, so one worker owns each metric. It merges every source's
window deltas and closes a window once **every live source** of the metric (each partition of the
topics the metric reads) has a watermark past the window's end plus the metric's lateness -- the
watermark of replay, computed as the minimum over sources. Sparse topics that feed no window
(governance actions: they only inform hints) do not hold windows back. A source that has said
nothing for `idle_after_ms` of wall time is *idle*: it no longer holds windows back (a quiet
partition, a dead worker), and data it sends later for windows already closed is counted as late.
When every source is idle, the input has ended for now: the owner closes every complete window up to
the largest watermark, as replay does at the end of its input. Until `idle_after_ms` has passed
since the owner took the metric over, a source never heard from is presumed live, so a (re)start
does not close windows before the sources have caught up. "Wall time" is the senders' clock
carried by every report and tick (`sent_ms`), read in stream order: an owner that falls behind
its input sees the same idleness as one that keeps up.

Windows close in `Engine.close_order`, the order replay uses, so the same events give the same
alerts (fingerprint, window, value, hints) whatever the number of partitions and workers.

State that matters after a crash is exported per metric by `snapshot_windows` (merged open windows,
source watermarks and offsets: changes with every report) and `snapshot_model` (detectors,
episodes, interventions: changes when a window closes); runtime/app.py keeps both in a Faust table.

Crash safety (no event counted twice, no window lost):

- Every report says which offsets of its source partition it covers, ``[first, next)``, and the
  owner remembers, per source, the next offset it has merged, in the same snapshot as the merged
  windows (one table value, so the two cannot disagree after a crash). A report it has already
  merged (``next <= covered``) is dropped: that is an owner re-reading its input after a crash,
  or a source re-reading its partition from the last committed offset and cutting its batches
  where it cut them before (runtime/resume.py). A report that overlaps what was merged without
  ending inside it is merged anyway -- losing events would be worse -- and counted as
  ``overlapping`` (``stream_guard_partial_reports_total``): it should never happen.
- The model is saved with the window it has closed up to. The app saves the model before the
  windows, so a crash between the two leaves a model ahead of the windows, never behind:
  `adopt` then drops the open windows the model has already scored (their alerts were on the
  alerts topic before the model was saved), instead of scoring them a second time."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stream_guard.aggregate.points import merge_accumulators
from stream_guard.aggregate.windows import Accumulators
from stream_guard.engine import INTERVENTIONS_TOPIC, Engine, MetricState, SharedState
from stream_guard.runtime.reports import Report, Tick
from stream_guard.types import AlertRecord

__all__ = ["Closed", "MetricWindows", "Owner"]

@dataclass
class MetricWindows:
    """The owner's view of one metric's open windows and of the sources feeding them."""

    open: dict[int, Accumulators] = field(default_factory=dict)  # start -> merged deltas
    closed_until: int | None = None
    watermarks: dict[str, int] = field(default_factory=dict)  # source -> largest event time
    heard_ms: dict[str, int] = field(default_factory=dict)  # source -> owner wall clock
    covered: dict[str, int] = field(default_factory=dict)  # source -> next offset merged


@dataclass(frozen=True, slots=True)
class Closed:
    """What one step of the owner produced: alert records, and when the report that closed the
    windows left its source (for the window-close-to-alert latency)."""

    alerts: list[AlertRecord]
    windows: int
    report_sent_ms: int | None


class Owner:
    def __init__(
        self, engine: Engine, sources: Mapping[str, Iterable[str]], idle_after_ms: int
    ) -> None:
        self.engine = engine
        self.expected = {metric: frozenset(names) for metric, names in sources.items()}
        self.idle_after_ms = idle_after_ms
        self._adopted_ms: dict[int, int] = {}
        self._clock: dict[int, int] = {}  # metric -> latest sender clock read in its stream
        self.index = {r.metric: m for m, r in enumerate(engine.rules)}
        self.windows: dict[int, MetricWindows] = {}

    def owns(self, metric: str) -> bool:
        return self.index.get(metric) in self.windows

    def adopt(
        self, metric: str, windows_blob: bytes | None, model_blob: bytes | None, now_ms: int
    ) -> None:
        """Takes ownership of `metric`, resuming from its saved state when there is one."""
        m = self.index[metric]
        self._adopted_ms[m] = self._clock[m] = now_ms
        mw = self.windows[m] = pickle.loads(windows_blob) if windows_blob else MetricWindows()
        if model_blob:
            state, shared, upto = pickle.loads(model_blob)
            self.engine.restore_metric_state(m, state)
            self._restore_shared(shared)
            if upto is not None and (mw.closed_until is None or mw.closed_until < upto):
                mw.open = {s: acc for s, acc in mw.open.items() if s >= upto}  # scored already
                mw.closed_until = upto

    def release(self, metric: str) -> None:
        self.windows.pop(self.index[metric], None)

    # --- messages ----------------------------------------------------------------------------
    def on_report(self, r: Report) -> Closed:
        m = self.index[r.metric]
        self._tick(m, r.sent_ms)
        mw = self.windows[m]
        outcome = self._admit(mw, r)
        self.engine.stats.reports[(r.metric, outcome)] += 1
        if outcome != "duplicate":
            self._merge(mw, r)
        if r.source in self.expected[r.metric]:
            mw.watermarks[r.source] = max(r.watermark_ms,
                                          mw.watermarks.get(r.source, r.watermark_ms))
            mw.heard_ms[r.source] = r.sent_ms
        return self._close(m, r.sent_ms)

    @staticmethod
    def _admit(mw: MetricWindows, r: Report) -> str:
        """merged, duplicate (already merged: dropped) or overlapping (merged, should not be)."""
        covered = mw.covered.get(r.source, -1)
        if r.next_offset <= covered:
            return "duplicate"
        mw.covered[r.source] = r.next_offset
        return "overlapping" if r.first_offset < covered else "merged"

    def _merge(self, mw: MetricWindows, r: Report) -> None:
        for raw in r.interventions:
            self._intervention(raw)
        for start, deltas in r.windows:
            if mw.closed_until is not None and start < mw.closed_until:
                self.engine.stats.late_partials[r.metric] += 1
                continue
            acc = mw.open.get(start)
            mw.open[start] = deltas if acc is None else merge_accumulators([acc, deltas])

    def on_tick(self, t: Tick) -> Closed:
        m = self.index[t.metric]
        self._tick(m, t.sent_ms)
        return self._close(m, None)

    def _tick(self, m: int, sent_ms: int) -> int:
        self._clock[m] = max(self._clock[m], sent_ms)
        return self._clock[m]

    # --- closing -----------------------------------------------------------------------------
    def watermark(self, m: int) -> tuple[int | None, bool]:
        """(watermark, final): the minimum over live sources, or -- every source idle -- the
        maximum, to be used without lateness. None while nothing may close."""
        now_ms = self._clock[m]
        mw = self.windows[m]
        live = [wm for s, wm in mw.watermarks.items()
                if now_ms - mw.heard_ms[s] < self.idle_after_ms]
        expected = self.expected[self.engine.rules[m].metric]
        adopted = self._adopted_ms[m]
        if now_ms - adopted < self.idle_after_ms and not expected <= mw.watermarks.keys():
            return None, False  # some partitions have not been heard of yet
        if live:
            return min(live), False
        if mw.watermarks:
            return max(mw.watermarks.values()), True
        return None, False

    def _close(self, m: int, sent_ms: int | None) -> Closed:
        mark, final = self.watermark(m)
        if mark is None:
            return Closed([], 0, None)
        rule = self.engine.rules[m]
        mw = self.windows[m]
        width = int(rule.window.total_seconds() * 1000)
        if not final:
            mark -= int(rule.lateness.total_seconds() * 1000)
        start = mw.closed_until
        if start is None:
            if not mw.open:
                return Closed([], 0, None)
            start = min(mw.open)
        alerts: list[AlertRecord] = []
        closed = 0
        while start + width <= mark:
            alerts.extend(self.engine.on_window(m, start, mw.open.pop(start, {})))
            closed += 1
            start += width
            mw.closed_until = start
        return Closed(alerts, closed, sent_ms if closed else None)

    # --- state -------------------------------------------------------------------------------
    def snapshot_windows(self, metric: str) -> bytes:
        return pickle.dumps(self.windows[self.index[metric]], protocol=pickle.HIGHEST_PROTOCOL)

    def snapshot_model(self, metric: str) -> bytes:
        """The model and the window it has closed up to (save it before `snapshot_windows`)."""
        m = self.index[metric]
        state: MetricState = self.engine.metric_state(m)
        closed_until = self.windows[m].closed_until
        return pickle.dumps((state, self.engine.shared_state(), closed_until),
                            protocol=pickle.HIGHEST_PROTOCOL)

    def _restore_shared(self, shared: SharedState) -> None:
        if len(shared.interventions) >= len(self.engine.interventions):
            self.engine.restore_shared_state(shared)

    def _intervention(self, raw: str) -> None:
        """A governance record consumed by some source: validated again here (the source has
        dead-lettered it if invalid). Reports repeat it for every metric: the log keeps it once."""
        events, _dead = self.engine.codec.decode(INTERVENTIONS_TOPIC, raw, "report")
        for ev in events:
            self.engine.interventions.add(ev.ts_ms, ev.fields)  # once per action id
