"""The window merger: one place decides when a window is complete, for replay and live."""

from __future__ import annotations

from stream_guard.aggregate.merger import MAX_EMPTY_RUN, WindowMerger

W = 60_000  # window width
L = 10_000  # lateness
DAY = 86_400_000
YEAR = 365 * DAY


def _merger(sources: tuple[str, ...] = ("a", "b"), idle_after_ms: int | None = None
            ) -> WindowMerger:
    return WindowMerger(W, L, frozenset(sources), idle_after_ms)


def _delta(start: int, value: float = 1.0) -> list[tuple[int, dict]]:
    return [(start, {(): [value, 1.0]})]


def _starts(m: WindowMerger, final: bool = False) -> list[int]:
    return [start for start, _, _ in m.close(final)]


def test_a_window_closes_once_every_source_is_past_its_end_plus_lateness() -> None:
    m = _merger()
    m.merge("a", _delta(0), watermark_ms=5 * W)
    assert _starts(m) == []  # b never heard from: it may still hold data for window 0
    m.merge("b", _delta(0, 2.0), watermark_ms=W + L - 1)
    assert _starts(m) == []  # b is 1 ms short of window 0's end plus lateness
    m.merge("b", [], watermark_ms=W + L)
    assert [(s, acc[()]) for s, acc, _ in m.close()] == [(0, [3.0, 2.0])]


def test_final_closes_every_complete_window_up_to_the_largest_watermark() -> None:
    m = _merger()
    m.merge("a", _delta(0), watermark_ms=3 * W + 5)
    assert _starts(m, final=True) == [0, W, 2 * W]


def test_a_jump_far_ahead_closes_a_bounded_number_of_empty_windows() -> None:
    m = _merger(("a",))
    m.merge("a", _delta(0), watermark_ms=W)
    assert _starts(m, final=True) == [0]
    m.merge("a", _delta(YEAR), watermark_ms=YEAR + W)
    closed = _starts(m, final=True)
    assert len(closed) == MAX_EMPTY_RUN + 1 and closed[-1] == YEAR
    assert m.state.skipped_windows == YEAR // W - MAX_EMPTY_RUN - 1


def test_skipping_never_closes_a_window_that_is_not_complete() -> None:
    m = _merger(("a",))
    m.merge("a", _delta(0), watermark_ms=L)
    m.merge("a", [], watermark_ms=DAY + W // 2 + L)  # window [DAY, DAY + W) is still open
    closed = _starts(m)
    assert closed[0] == 0 and closed[-1] < DAY and m.state.closed_until == DAY
    m.merge("a", _delta(DAY, 5.0), watermark_ms=DAY + W + L)
    assert [(s, acc[()]) for s, acc, _ in m.close()] == [(DAY, [5.0, 1.0])]


def test_a_report_merged_before_is_dropped_by_its_offsets() -> None:
    m = _merger(("a",))
    assert m.merge("a", _delta(0), W, offsets=(0, 10)) == "merged"
    assert m.merge("a", _delta(0), W, offsets=(0, 10)) == "duplicate"
    assert m.merge("a", _delta(0), W, offsets=(5, 12)) == "overlapping"
    assert m.state.open[0][()] == [2.0, 2.0]


def test_a_source_is_idle_only_when_caught_up_and_silent_for_idle_after() -> None:
    m = _merger(idle_after_ms=1_000)
    m.merge("a", _delta(0), watermark_ms=5 * W, now_ms=0)
    m.merge("b", [], watermark_ms=W // 2, now_ms=0)
    m.tick(5_000)
    assert _starts(m) == []  # b is silent but never said it is caught up: it may be behind
    m.status("b", caught_up=True, now_ms=5_000)
    assert _starts(m) == [0, W, 2 * W, 3 * W]  # b idle: a alone decides (less lateness)


def test_when_every_source_is_idle_complete_windows_close_without_lateness() -> None:
    m = _merger(idle_after_ms=1_000)
    m.merge("a", _delta(0), watermark_ms=2 * W, now_ms=0)
    m.merge("b", [], watermark_ms=W, now_ms=0)
    for s in ("a", "b"):
        m.status(s, caught_up=True, now_ms=2_000)
    assert _starts(m) == [0, W]


def test_a_source_waking_up_presumes_the_others_live_again() -> None:
    """A burst into an idle worker reaches the partitions one after the other: the first
    must not close the windows the others are about to fill."""
    m = _merger(idle_after_ms=1_000)
    for s in ("a", "b"):
        m.merge(s, [], watermark_ms=0, now_ms=0)
    for s in ("a", "b"):
        m.status(s, caught_up=True, now_ms=10_000)  # both idle
    assert m.idle_sources() == {"a", "b"}
    m.merge("a", _delta(0), watermark_ms=10 * W, now_ms=10_000)  # the burst reaches a first
    assert _starts(m) == []
    m.merge("b", _delta(0, 2.0), watermark_ms=10 * W, now_ms=10_100)
    closed = list(m.close())
    assert closed[0] == (0, {(): [3.0, 2.0]}, None) and m.state.late_deltas == 0


def test_a_partition_without_data_counts_once_it_says_it_is_caught_up() -> None:
    m = _merger(idle_after_ms=1_000)
    m.merge("a", _delta(0), watermark_ms=3 * W, now_ms=0)
    m.status("b", caught_up=True, now_ms=0)  # an empty partition
    assert _starts(m) == []
    m.status("b", caught_up=True, now_ms=1_500)  # the next tick of its worker
    assert _starts(m) == [0, W]


def test_a_stale_caught_up_status_makes_no_source_idle() -> None:
    """The worker that said a partition was caught up may be dead (its partition about to be
    re-read elsewhere), or the owner restarted from a snapshot: only a fresh status counts."""
    m = _merger(idle_after_ms=1_000)
    m.merge("a", _delta(0), watermark_ms=5 * W, now_ms=0)
    m.merge("b", [], watermark_ms=W // 2, now_ms=0)
    m.status("b", caught_up=True, now_ms=0)
    m.tick(5_000)  # silent for long, but its last status is 5 s old
    assert _starts(m) == []
    m.status("b", caught_up=True, now_ms=5_000)
    assert _starts(m) == [0, W, 2 * W, 3 * W]


def test_a_window_alone_far_in_the_past_is_dropped_not_learned() -> None:
    """One event dated years before the rest (the first record of a partition): its window is
    alone in a long empty gap, so it is dropped (counted), never handed to a detector."""
    m = _merger(("a",))
    m.merge("a", _delta(0), watermark_ms=W)
    assert _starts(m) == []  # the gap after it is not known yet: nothing closes
    m.merge("a", _delta(YEAR) + _delta(YEAR + W), watermark_ms=YEAR + 3 * W)
    closed = [(s, acc) for s, acc, _ in m.close() if acc]
    assert [s for s, _ in closed] == [YEAR, YEAR + W]
    assert m.state.isolated_windows == 1
