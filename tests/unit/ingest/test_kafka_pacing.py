"""The pacing schedule: event time runs `speed` times faster than wall time."""

from __future__ import annotations

import pytest

from stream_guard.clock import ManualClock
from stream_guard.ingest.kafka_pacing import Pacer, due_after

T0 = 1_772_409_600_000
MINUTE = 60_000


def _replay(pacer: Pacer, clock: ManualClock, events: list[int | None]) -> list[int]:
    """Wall-clock ms at which each event is sent when the caller sleeps as told."""
    sent = []
    for ts in events:
        clock.advance(round(pacer.delay(ts) * 1000))
        sent.append(clock.now_ms())
    return sent


def test_due_after_scales_event_time_by_speed() -> None:
    assert due_after(T0, T0 + MINUTE, speed=60) == 1.0
    assert due_after(T0, T0 + MINUTE, speed=0.5) == 120.0
    assert due_after(T0, T0 - MINUTE, speed=60) == 0.0


def test_a_minute_of_event_time_per_second_at_speed_60() -> None:
    clock = ManualClock(0)
    sent = _replay(Pacer(60, clock), clock, [T0 + i * 15_000 for i in range(9)])
    assert sent == [0, 250, 500, 750, 1000, 1250, 1500, 1750, 2000]


def test_the_first_timed_event_anchors_the_schedule() -> None:
    clock = ManualClock(5_000)
    sent = _replay(Pacer(10, clock), clock, [None, T0, None, T0 + 10_000])
    assert sent == [5_000, 5_000, 5_000, 6_000]


def test_late_events_go_at_once_and_do_not_move_the_schedule() -> None:
    clock = ManualClock(0)
    sent = _replay(Pacer(1, clock), clock, [T0, T0 + 2_000, T0 + 500, T0 + 3_000])
    assert sent == [0, 2_000, 2_000, 3_000]


def test_time_spent_sending_counts_toward_the_wait() -> None:
    clock = ManualClock(0)
    pacer = Pacer(1, clock)
    pacer.delay(T0)
    clock.advance(300)  # sending took 300 ms
    assert pacer.delay(T0 + 1_000) == pytest.approx(0.7)
    clock.advance(5_000)  # fell behind: what is due goes at once until caught up
    assert pacer.delay(T0 + 2_000) == 0.0


@pytest.mark.parametrize("speed", [0, -1])
def test_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(speed, ManualClock(0))
    with pytest.raises(ValueError, match="positive"):
        due_after(0, 1, speed)
