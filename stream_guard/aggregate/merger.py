"""② the window merger: one metric's window deltas from every source in, closed windows out.

The one place where event time decides that a window is complete. Replay and the live owner
both feed it the same way: per source partition (a "topic/partition" name), the window deltas
that source gathered since it last reported and its watermark (the largest event time it has
accepted). A window closes once every *live* source of the metric has a watermark past the
window's end plus the metric's lateness, so the same events, partitioned the same way, close
the same windows with the same contents whatever the batching.

- **Live sources.** Every partition of every topic the metric reads is expected. A source never
  heard from holds windows back: replay treats every source as live until the input ends
  (`close(final=True)`). Live, a source is *idle* -- no longer holding windows back -- only when
  it has said it is caught up (its position was at the partition's end), recently enough (a
  status older than `idle_after_ms` is void: the worker that sent it may be gone), and has sent
  no data for `idle_after_ms` of the senders' clock. When a source wakes up (sends data after
  being idle), every other caught-up source is presumed live again for `idle_after_ms`: a burst
  into an idle worker reaches the partitions one after the other, and the first must not close
  the windows the others are about to fill.
- **Bounded catch-up.** When the watermark jumps far past the last closed window, at most
  `MAX_EMPTY_RUN` consecutive empty windows are closed (zero-filled points: a metric going silent
  is what an outage looks like); the rest of an empty gap is skipped and counted.
- **Crash safety (live).** Deltas carry the source offsets they cover, ``[first, next)``; the
  merger remembers per source the next offset it has merged, in the same state as the merged
  windows, and drops a report it has merged already (see runtime/owner.py). The leaf cube and
  sellers of open windows are not saved (thousands of keys per window: a backlog of held-back
  windows made a snapshot larger than a Kafka message); a window restored without them
  (`cubeless`) closes without them, and its hints come from the configured slices.

>>> m = WindowMerger(width_ms=10, lateness_ms=2, sources=frozenset({"t/0", "t/1"}))
>>> m.merge("t/0", [(0, {(): [1.0, 1.0]})], watermark_ms=15)
'merged'
>>> [start for start, _, _ in m.close()]  # t/1 not heard from: nothing closes
[]
>>> m.merge("t/1", [(0, {(): [2.0, 1.0]})], watermark_ms=12)
'merged'
>>> [(start, acc[()]) for start, acc, _cube in m.close()]
[(0, [3.0, 2.0])]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from stream_guard.aggregate.cube import WindowCube
from stream_guard.aggregate.windows import Accumulators, merge_into
from stream_guard.config.rules import MetricRule

__all__ = [
    "MAX_EMPTY_RUN", "Closable", "MergerState", "SourceMark", "WindowMerger", "close_in_order",
    "expected_sources", "merger_for", "source_name",
]

Closable = tuple[int, Accumulators, WindowCube | None]
"""A closed window: its start, its merged slices and its cube (None: no cube, or incomplete)."""

MAX_EMPTY_RUN = 96
"""Consecutive empty windows closed at most when the watermark jumps (a day of 15-minute
windows); beyond, the gap is skipped. Bounds the work one event far ahead can cause."""


def source_name(topic: str, partition: int) -> str:
    """How reports and mergers name the source of a partition."""
    return f"{topic}/{partition}"


def expected_sources(
    rules: Iterable[MetricRule], partitions: Mapping[str, int]
) -> dict[str, frozenset[str]]:
    """Metric -> the source names whose watermarks gate its windows (every partition of every
    topic it reads; governance actions only inform hints and gate nothing)."""
    return {
        r.metric: frozenset(source_name(src.topic, p) for src in r.sources
                            for p in range(partitions[src.topic]))
        for r in rules
    }


def merger_for(
    rule: MetricRule, sources: frozenset[str], idle_after_ms: int | None = None,
    state: MergerState | None = None,
) -> WindowMerger:
    return WindowMerger(int(rule.window.total_seconds() * 1000),
                        int(rule.lateness.total_seconds() * 1000), sources, idle_after_ms, state,
                        cube=bool(rule.leaf_dimensions or rule.seller_field))


@dataclass
class SourceMark:
    """What the merger knows of one source."""

    watermark_ms: int | None  # None: no data yet (only its status was heard)
    data_ms: int = 0  # senders' clock when it last sent data (live only)
    caught_up: bool = False  # at its partition's end when it last said so (live only)
    status_ms: int = 0  # senders' clock of that status: a stale one (a dead worker's) is void
    woken_ms: int = 0  # senders' clock when another source last woke up (live only)


@dataclass
class MergerState:
    """Everything the merger keeps: what the live owner saves with the metric's windows."""

    open: dict[int, Accumulators] = field(default_factory=dict)  # start -> merged deltas
    closed_until: int | None = None  # windows before this start are closed
    sources: dict[str, SourceMark] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)  # source -> next offset merged (live)
    skipped_windows: int = 0  # empty windows skipped by bounded catch-up
    isolated_windows: int = 0  # windows alone in a long empty gap: dropped, their events late
    last_data: int | None = None  # start of the last closed window that held data
    late_deltas: int = 0  # deltas for windows already closed (their source had been idle)
    cubeless: list[int] = field(default_factory=list)  # open windows restored without cube
    cubes: dict[int, WindowCube] = field(default_factory=dict)  # start -> merged cube
    due: dict[int, set[str]] = field(default_factory=dict)  # start -> sources whose cube is due


class WindowMerger:
    def __init__(
        self, width_ms: int, lateness_ms: int, sources: frozenset[str],
        idle_after_ms: int | None = None, state: MergerState | None = None, cube: bool = False,
    ) -> None:
        self.width_ms = width_ms
        self.cube = cube  # every source with data in a window hands over its cube
        self.lateness_ms = lateness_ms
        self.expected = sources
        self.idle_after_ms = idle_after_ms  # None: sources are never idle (replay)
        self.state = state or MergerState()
        self.now_ms = 0  # the latest senders' clock read (live)

    # --- input -------------------------------------------------------------------------------
    def merge(
        self, source: str, windows: Iterable[tuple[int, Accumulators]],
        watermark_ms: int | None, offsets: tuple[int, int] | None = None, now_ms: int = 0,
        cubes: Iterable[tuple[int, WindowCube]] = (),
    ) -> str:
        """One source's deltas since its last report and the cubes it hands over: 'merged',
        or 'duplicate' (dropped: it was merged before a crash) or 'overlapping' (merged; should
        never happen)."""
        outcome = "merged"
        if offsets is not None:
            covered = self.state.covered.get(source, -1)
            if offsets[1] <= covered:
                return "duplicate"
            outcome = "overlapping" if offsets[0] < covered else "merged"
            self.state.covered[source] = offsets[1]
        for start, deltas in windows:
            if self._add(start, deltas) and deltas and self.cube:
                self.state.due.setdefault(start, set()).add(source)
        for start, cube in cubes:
            self._add_cube(source, start, cube)
        if source in self.expected:
            self._heard(source, watermark_ms, now_ms)
        return outcome

    def _add(self, start: int, deltas: Accumulators) -> bool:
        st = self.state
        if st.closed_until is not None and start < st.closed_until:
            st.late_deltas += 1
            return False
        acc = st.open.get(start)
        if acc is None:
            acc = st.open[start] = {}  # never the caller's dict: it is added to in place
        merge_into(acc, deltas)
        return True

    def _add_cube(self, source: str, start: int, cube: WindowCube) -> None:
        st = self.state
        if st.closed_until is not None and start < st.closed_until:
            return  # its window closed without it (counted with its deltas, `due`)
        due = st.due.get(start)
        if due is not None:
            due.discard(source)
        merged = st.cubes.get(start)
        if merged is None:
            merged = st.cubes[start] = WindowCube()  # never the caller's: added to in place
        merged.add(cube)

    def _heard(self, source: str, watermark_ms: int | None, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)
        mark = self.state.sources.get(source)
        if mark is None:
            mark = self.state.sources[source] = SourceMark(watermark_ms)
        elif self._idle(mark):
            self._wake(source)
        if watermark_ms is not None and (mark.watermark_ms is None
                                         or watermark_ms > mark.watermark_ms):
            mark.watermark_ms = watermark_ms
        mark.data_ms = self.now_ms
        mark.caught_up = False

    def status(self, source: str, caught_up: bool, now_ms: int) -> None:
        """A live source's position: at its partition's end (`caught_up`) or behind. A source
        first heard of this way (no data yet: an empty partition) counts from now."""
        self.now_ms = max(self.now_ms, now_ms)
        if source not in self.expected:
            return
        mark = self.state.sources.get(source)
        if mark is None:
            mark = self.state.sources[source] = SourceMark(None, data_ms=self.now_ms)
        mark.caught_up = caught_up
        mark.status_ms = self.now_ms

    def tick(self, now_ms: int) -> None:
        self.now_ms = max(self.now_ms, now_ms)

    # --- idleness (live) ---------------------------------------------------------------------
    def _idle(self, mark: SourceMark) -> bool:
        """Caught up by a status at most `idle_after_ms` old (the worker consuming it is alive
        and at its end: a restarted owner or a dead worker's partition is not idle), and
        silent for `idle_after_ms` since its last data or the last wake-up."""
        after = self.idle_after_ms
        if after is None or not mark.caught_up or self.now_ms - mark.status_ms > after:
            return False
        return self.now_ms - max(mark.data_ms, mark.woken_ms) >= after

    def idle_sources(self) -> set[str]:
        """The sources heard of that are idle now (no longer holding windows back)."""
        return {name for name, mark in self.state.sources.items() if self._idle(mark)}

    def _wake(self, source: str) -> None:
        for name, other in self.state.sources.items():
            if name != source:
                other.woken_ms = self.now_ms

    # --- closing -----------------------------------------------------------------------------
    def watermark(self) -> tuple[int | None, bool]:
        """(watermark, final): the minimum over live sources or -- every source idle -- the
        maximum, to be used without lateness. None while nothing may close."""
        marks = self.state.sources
        if not self.expected <= marks.keys():
            return None, False  # some partitions have not been heard of yet
        live = [m.watermark_ms for m in marks.values() if not self._idle(m)]
        if live:  # a live source without data yet holds everything back
            known = [w for w in live if w is not None]
            return (min(known) if len(known) == len(live) else None), False
        return self._largest(), True

    def _largest(self) -> int | None:
        return max((m.watermark_ms for m in self.state.sources.values()
                    if m.watermark_ms is not None), default=None)

    def frontier(self) -> float:
        """Every window this metric closes from now on has a close point (end + lateness) above
        this: its watermark; +inf when every source is idle, -inf while nothing may close."""
        mark, final = self.watermark()
        if mark is None:
            return -math.inf
        return math.inf if final else mark

    def close(self, final: bool = False, until: float = math.inf) -> Iterator[Closable]:
        """Pops every window complete by the watermark, oldest first (all complete windows up to
        the largest watermark when `final`: the input has ended) whose close point is at most
        `until` (see `close_in_order`)."""
        if final:
            mark, exact = self._largest(), True
        else:
            mark, exact = self.watermark()
        if mark is None:
            return
        limit = min(mark if exact else mark - self.lateness_ms, until - self.lateness_ms)
        if limit > -math.inf:
            yield from self._close_until(int(limit))

    def _close_until(self, mark: int) -> Iterator[Closable]:
        st, width = self.state, self.width_ms
        start = st.closed_until
        if start is None:
            if not st.open:
                return
            start = min(st.open)
        empty_run = 0
        while start + width <= mark:
            window = st.open.pop(start, None)
            if window is None and empty_run >= MAX_EMPTY_RUN:
                start = self._skip(start, mark)
                continue
            cube = self._cube(start)
            if window is not None and self._isolated(start, mark):
                st.isolated_windows += 1
                window = None
            elif window is not None:
                st.last_data = start
            empty_run = 0 if window is not None else empty_run + 1
            st.closed_until = start + width
            yield start, window if window is not None else {}, cube if window else None
            start += width
        for stale in [s for s in (*st.cubes, *st.due) if s < start]:  # windows dropped
            st.cubes.pop(stale, None)  # unclosed (an owner's restore: runtime/owner.py)
            st.due.pop(stale, None)

    def _cube(self, start: int) -> WindowCube | None:
        """The closing window's merged cube; None if a source's is missing (`due`) or it was
        not saved (`cubeless`)."""
        st = self.state
        cube, due = st.cubes.pop(start, None), st.due.pop(start, None)
        if start in st.cubeless:
            st.cubeless.remove(start)
            return None
        return None if due else cube

    def _isolated(self, start: int, mark: int) -> bool:
        """A window with data alone in the middle of a long empty gap (MAX_EMPTY_RUN windows
        on both sides, all complete): a record far in the past (say, one event dated 2001 at
        the start of a partition). Its windows are dropped: a detector must not learn them."""
        gap = MAX_EMPTY_RUN * self.width_ms
        last = self.state.last_data
        if last is not None and start - last <= gap:
            return False
        end = start + self.width_ms
        return mark >= end + gap and not any(start < s <= end + gap for s in self.state.open)

    def _skip(self, start: int, mark: int) -> int:
        """Skips empty windows from `start` up to the next one with data or the first that is
        not complete, whichever comes first; returns where closing goes on."""
        st, width = self.state, self.width_ms
        incomplete = start + (mark - start) // width * width  # first start with end > mark
        target = min((s for s in st.open if s >= start), default=incomplete)
        target = max(start + width, min(target, incomplete))
        st.skipped_windows += (target - start) // width
        st.closed_until = target
        return target


def close_in_order(
    mergers: Mapping[int, WindowMerger], order: Callable[[int, int], tuple[int, ...]],
    final: bool = False,
) -> list[tuple[int, int, Accumulators, WindowCube | None]]:
    """`(metric index, start, window, cube)` of every window complete across `mergers`, in
    `order`.

    An owner's alert records come out in the order its windows close, so windows must reach
    the engine in one order whatever the batching: by close point (end + lateness). A window
    is released only once no merger can still close one with an earlier close point -- its
    close point is at most every merger's `frontier`.
    """
    until = math.inf if final else min((m.frontier() for m in mergers.values()), default=0.0)
    closable = [(m, start, acc, cube) for m, merger in mergers.items()
                for start, acc, cube in merger.close(final, until)]
    closable.sort(key=lambda c: order(c[0], c[1]))
    return closable
