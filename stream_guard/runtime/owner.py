"""③-⑤ on the live side: the owners of metrics feed their window mergers and engines.

The partials topic is keyed by metric, so each metric's reports and ticks meet on one partials
partition (its *home*, stream_guard/ownership.py), and the worker holding that partition owns
the metric. A worker has one `Owner` per partials partition it holds (`Owners`): one engine
over the metrics homed there, with its own shared state (interventions),
so that a step for partition p closes and saves only p's metrics and every table value it
writes lands in p's changelog partition (Faust writes to the partition of the message being
processed). A rebalance then moves an owner whole: the worker given p restores exactly p's
state. Co-moving hints relate only metrics of one partition; replay groups them the same way.

An `Owner`'s `WindowMerger`s (aggregate/merger.py, the ones replay uses) merge every source's
window deltas and decide when a window is complete: watermark = minimum over live sources,
lateness, idleness (a source is idle only once it said it is caught up with its partition and
sent nothing for `idle_after_ms`). "Wall time" is the senders' clock carried by every report
and tick (`sent_ms`), read in stream order: an owner that falls behind its input sees the same
idleness as one that keeps up.

Windows of all the metrics of an owner reach its engine in one order, by close point
(`close_windows`, as replay does), so the same events give the same alerts (fingerprint,
window, value, hints) whatever the number of workers and however their reports interleave.

State that matters after a crash is exported per metric by `snapshot_windows` (the merger's
state: open windows, source watermarks and offsets; changes with every report) and
`snapshot_model` (detectors, episodes, the owner's interventions:
changes when a window closes); runtime/app.py keeps both in a Faust table.

Crash safety (no event counted twice, no window lost):

- Every report says which offsets of its source partition it covers, ``[first, next)``, and the
  owner remembers, per source, the next offset it has merged, in the same snapshot as the merged
  windows (one table value, so the two cannot disagree after a crash). A report it has already
  merged (``next <= covered``) is dropped: that is an owner re-reading its input after a crash,
  or a source re-reading its partition from the last committed offset and cutting its batches
  where it cut them before (runtime/resume.py). A report that overlaps what was merged without
  ending inside it is merged anyway -- losing events would be worse -- and counted as
  ``overlapping`` (``stream_guard_partial_reports_total``): it should never happen.
- The model is saved with the window it has closed up to (runtime/checkpoint.py saves a
  partition's models, windows and position at once, every few closes). The app saves the model
  before the windows, so a crash between the two leaves a model ahead of the windows, never behind:
  `adopt` then drops the open windows the model has already scored (their alerts were on the
  alerts topic before the model was saved), instead of scoring them a second time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from stream_guard.aggregate.merger import MergerState, WindowMerger, merger_for
from stream_guard.config.rules import MetricRule
from stream_guard.engine import Engine
from stream_guard.ownership import close_windows, home, owner_groups
from stream_guard.runtime.reports import NO_WATERMARK, Report, Tick
from stream_guard.runtime.snapshot import (
    ModelSnapshot,
    decode_model,
    decode_windows,
    encode_model,
    encode_windows,
)
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord

__all__ = ["Closed", "Owner", "Owners"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Closed:
    """What one step of the owner produced: alert records, the metric of each window closed,
    in close order (their state must be saved), and when the report that closed them left its
    source (for the window-close-to-alert latency)."""

    alerts: list[AlertRecord]
    closes: tuple[str, ...]
    report_sent_ms: int | None

    @property
    def windows(self) -> bool:
        return bool(self.closes)

    @property
    def metrics(self) -> frozenset[str]:
        """The metrics whose windows closed."""
        return frozenset(self.closes)

    @classmethod
    def combine(cls, steps: list[Closed]) -> Closed:
        """What several steps produced, in order (the latest report's send time)."""
        sent = [c.report_sent_ms for c in steps if c.report_sent_ms is not None]
        return cls([a for c in steps for a in c.alerts],
                   tuple(m for c in steps for m in c.closes), sent[-1] if sent else None)


class Owner:
    def __init__(
        self, engine: Engine, sources: Mapping[str, frozenset[str]], idle_after_ms: int
    ) -> None:
        self.engine = engine
        self.expected = dict(sources)
        self.idle_after_ms = idle_after_ms
        self.index = {r.metric: m for m, r in enumerate(engine.rules)}
        self.mergers: dict[int, WindowMerger] = {}
        self._seq = 0  # snapshots taken (and restored: the newest shared state is kept)
        self._shared_seq = -1  # seq of the snapshot the shared state was restored from
        self._statuses_until: dict[int, int] = {}  # metric -> senders' clock of its last status

    def owns(self, metric: str) -> bool:
        return self.index.get(metric) in self.mergers

    def adopt(
        self, metric: str, windows_blob: bytes | None, model_blob: bytes | None, now_ms: int
    ) -> None:
        """Takes ownership of `metric`, resuming from its saved state when there is one."""
        m = self.index[metric]
        state = decode_windows(windows_blob) if windows_blob else MergerState()
        merger = self.mergers[m] = merger_for(self.engine.rules[m], self.expected[metric],
                                              self.idle_after_ms, state)
        merger.tick(now_ms)
        # ticks up to the last status the saved state applied are re-read after a restart: not
        # applied again (with merged offsets from after them, they could make a source idle
        # where it was not)
        self._statuses_until[m] = max((mk.status_ms for mk in state.sources.values()), default=-1)
        for mark in state.sources.values():  # what was idle before a restart counts again
            mark.caught_up, mark.data_ms = False, now_ms  # only after idle_after from now
        if model_blob:
            model = decode_model(model_blob)
            self.engine.restore_metric_state(m, model.metric)
            if model.seq > self._shared_seq:  # several metrics adopted: the newest one's
                self.engine.restore_shared_state(model.shared)
                self._shared_seq = model.seq
            self._seq = max(self._seq, model.seq)
            upto = model.closed_until
            if upto is not None and (state.closed_until is None or state.closed_until < upto):
                state.open = {s: acc for s, acc in state.open.items() if s >= upto}  # scored
                state.closed_until = upto

    def release(self, metric: str) -> None:
        self.mergers.pop(self.index[metric], None)

    def merger(self, metric: str) -> WindowMerger:
        return self.mergers[self.index[metric]]

    # --- messages ----------------------------------------------------------------------------
    def on_report(self, r: Report) -> Closed:
        m = self.index[r.metric]
        merger = self.mergers[m]
        late_before = merger.state.late_deltas
        watermark = None if r.watermark_ms == NO_WATERMARK else r.watermark_ms
        outcome = merger.merge(r.source, r.windows, watermark,
                               (r.first_offset, r.next_offset), r.sent_ms, r.cubes)
        self.engine.stats.reports[(r.metric, outcome)] += 1
        self.engine.stats.late_partials[r.metric] += merger.state.late_deltas - late_before
        if outcome != "duplicate":
            for ts_ms, fields in r.interventions:
                self.engine.add_intervention(ts_ms, fields)  # kept once per action id
        return self._close(r.sent_ms)

    def on_tick(self, t: Tick) -> Closed:
        """Wall time and the senders' partition extents, for every metric of this owner (one
        tick per partials partition: runtime/agents.py `Ticker`; `t.metric` only routes it)."""
        for m, merger in self.mergers.items():
            merger.tick(t.sent_ms)
            if t.sent_ms <= self._statuses_until.get(m, -1):
                continue  # applied before the state was saved (see `adopt`)
            for source, (end, first) in t.status.items():
                merged = merger.state.covered.get(source, -1)
                merger.status(source, first >= end or merged >= end, t.sent_ms)
        return self._close(None)

    def watermark(self, m: int) -> tuple[int | None, bool]:
        return self.mergers[m].watermark()

    def _close(self, sent_ms: int | None) -> Closed:
        alerts, closed = close_windows(self.engine, self.mergers)
        closes = tuple(self.engine.rules[m].metric for m in closed)
        return Closed(alerts, closes, sent_ms if closes else None)

    # --- state -------------------------------------------------------------------------------
    def snapshot_windows(self, metric: str) -> bytes:
        return encode_windows(self.merger(metric).state)

    def snapshot_model(self, metric: str) -> bytes:
        """The model and the window it has closed up to (save it before `snapshot_windows`)."""
        m = self.index[metric]
        self._seq += 1
        return encode_model(ModelSnapshot(self.engine.metric_state(m),
                                          self.engine.shared_state(),
                                          self.mergers[m].state.closed_until, self._seq))


class Owners:
    """A worker's owners: one per partials partition it is handed messages of, over the metrics
    homed there (stream_guard/ownership.py); made on first use, dropped when revoked.

    `new_owner(rules, stats)` makes the owner of a group of rules; every owner counts into the
    one `stats` (a revoked owner's counters stay counted)."""

    def __init__(
        self, rules: list[MetricRule], partitions: int,
        new_owner: Callable[[list[MetricRule], EngineStats], Owner],
        stats: EngineStats | None = None,
    ) -> None:
        self.partitions = partitions
        self.groups = owner_groups(rules, partitions)
        self.new_owner = new_owner
        self.stats = stats or EngineStats()
        self.units: dict[int, Owner] = {}
        self._known = {rule.metric for rule in rules}
        self._warned: set[tuple[str, int]] = set()

    def of(self, partition: int) -> Owner | None:
        """The owner of the metrics homed on `partition` (None: none is)."""
        unit = self.units.get(partition)
        if unit is None and partition in self.groups:
            unit = self.units[partition] = self.new_owner(self.groups[partition], self.stats)
        return unit

    def metrics(self, partition: int) -> list[str]:
        """The metrics homed on `partition`, in rule order."""
        return [rule.metric for rule in self.groups.get(partition, [])]

    def owner_of(self, metric: str) -> Owner | None:
        """The owner holding `metric` now (None: not adopted on this worker)."""
        unit = self.units.get(home(metric, self.partitions))
        return unit if unit is not None and unit.owns(metric) else None

    def owns(self, metric: str) -> bool:
        return self.owner_of(metric) is not None

    def misrouted(self, metric: str, partition: int) -> None:
        """A partials message on a partition that is not its metric's home (a producer with
        another partitioner, or an unknown metric): dropped, counted and logged."""
        known = metric if metric in self._known else "unknown"  # (bounded label values)
        self.stats.reports[(known, "misrouted")] += 1
        if (known, partition) not in self._warned:  # once: a wrong topic misroutes them all
            self._warned.add((known, partition))
            log.warning("partials/%d: a message of metric %r, homed on partition %s of %d: "
                        "dropped (counted as misrouted from now on)", partition, metric[:80],
                        home(metric, self.partitions), self.partitions)

    def release(self) -> None:
        """Every partials partition was revoked: owners are made again from the table."""
        self.units.clear()

    def __iter__(self) -> Iterator[Owner]:
        return iter(list(self.units.values()))
