"""Pacing a replay: event time runs `speed` times faster than wall time.

The first timed event anchors the schedule: an event `d` ms of event time after it is due
``d / speed`` ms of wall time after the anchor was sent. Events that are due already (out of
order, or the producer fell behind) go at once, so a slow stretch is caught up and the average
rate stays right. The pacer only computes waits; the caller sleeps, which keeps this pure and
testable with a manual clock.

>>> from stream_guard.clock import ManualClock
>>> clock = ManualClock(0)
>>> pacer = Pacer(speed=60, clock=clock)
>>> pacer.delay(1_000_000)          # the anchor goes at once
0.0
>>> pacer.delay(1_060_000)          # one minute of event time later: one second of wall time
1.0
>>> clock.advance(400)
>>> pacer.delay(1_060_000)
0.6
"""

from __future__ import annotations

from stream_guard.clock import Clock

__all__ = ["Pacer", "due_after"]


def due_after(anchor_ms: int, event_ms: int, speed: float) -> float:
    """Seconds of wall time after the anchor at which an event is due (never negative).

    >>> due_after(0, 3_600_000, speed=3600)
    1.0
    >>> due_after(5_000, 1_000, speed=1)    # earlier than the anchor: due at once
    0.0
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return max(0.0, (event_ms - anchor_ms) / 1000.0 / speed)


class Pacer:
    """Says how long to wait before sending each event; events without a time never wait."""

    def __init__(self, speed: float, clock: Clock) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.speed = speed
        self.clock = clock
        self._anchor: tuple[int, float] | None = None  # (event ms, monotonic s)

    def delay(self, event_ms: int | None) -> float:
        """Seconds to wait before sending an event of time `event_ms` (0.0 when due)."""
        if event_ms is None:
            return 0.0
        now = self.clock.monotonic()
        if self._anchor is None:
            self._anchor = (event_ms, now)
            return 0.0
        anchor_ms, anchor_s = self._anchor
        return max(0.0, anchor_s + due_after(anchor_ms, event_ms, self.speed) - now)
