"""When did a record of a file arrive? A robust estimate of stream time, for event-time sanity.

Live, a record's arrival time is its Kafka timestamp, and an event dated more than `MAX_SKEW_MS`
after it is refused as `future_timestamp` (aggregate/source.py). A file has no arrival times, so
replay (and `stream-guard produce`, which stamps records with them) estimates one per record from
the event times around it: per block of `BLOCK` records, the lower median of the event times of
the `WINDOW` records starting at the block (the last `WINDOW` records at the end of the input),
never decreasing. A median ignores any minority of wild timestamps (up to half the window,
clustered or not), and a genuine jump in time (a gap in the data) moves it as soon as the
records after the jump are the majority. The allowance beyond it is the window's spread (3 x its
interquartile range) when that is larger than `MAX_SKEW_MS`: a sparse stream (one record an
hour) is not "in the future" because its median lags by a few records.

Both replay and produce estimate over the same items -- the records of the file, timed by
`kafka_batch.event_time` (None for a value without a valid ``ts``) -- so they agree exactly.

>>> times = [1_000 * i for i in range(200)]
>>> times[120] = 10**12  # one record far in the future
>>> stamped = list(arrival_times(times, lambda t: t))
>>> [t for t, arrival in stamped if is_future(t, arrival)]
[1000000000000]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

__all__ = ["BLOCK", "MAX_SKEW_MS", "WINDOW", "ArrivalClock", "arrival_times", "is_future"]

MAX_SKEW_MS = 5 * 60_000
"""How far ahead of its arrival an event may be dated (client clock skew)."""
WINDOW = 64
BLOCK = 32
SPREAD = 3

T = TypeVar("T")


def is_future(ts_ms: int, arrival_ms: int | None) -> bool:
    """The one rule, live and replay: dated more than the allowed skew after it arrived."""
    return arrival_ms is not None and ts_ms > arrival_ms + MAX_SKEW_MS


class ArrivalClock:
    """The estimate, block by block: `block` gives the arrival of the next `BLOCK` records."""

    def __init__(self) -> None:
        self.clock: int | None = None
        self._history: deque[int] = deque(maxlen=WINDOW)  # times of records already passed

    def block(self, ahead: Sequence[int | None], tail: bool) -> int | None:
        """Arrival of the block starting `ahead` (the times of the next records, at least
        WINDOW of them unless the input ends: `tail`); the block's times are then passed."""
        window = [t for t in ahead[:WINDOW] if t is not None]
        if tail:  # the end of the input: the last WINDOW times, those already passed included
            window = (list(self._history) + window)[-WINDOW:]
        arrival = self.clock
        if window:
            window.sort()
            median = window[(len(window) - 1) // 2]
            self.clock = median if self.clock is None else max(self.clock, median)
            spread = SPREAD * (window[3 * len(window) // 4] - window[len(window) // 4])
            arrival = self.clock + max(0, spread - MAX_SKEW_MS)
        self._history.extend(t for t in ahead[:BLOCK] if t is not None)
        return arrival


def arrival_times(
    items: Iterable[T], time_of: Callable[[T], int | None]
) -> Iterator[tuple[T, int | None]]:
    """Each item, in order, with its estimated arrival time (None until a time is known)."""
    clock = ArrivalClock()
    pending: list[tuple[T, int | None]] = []
    for item in items:
        pending.append((item, time_of(item)))
        if len(pending) >= WINDOW:
            yield from _release(clock, pending, tail=False)
    while pending:
        yield from _release(clock, pending, tail=True)


def _release(
    clock: ArrivalClock, pending: list[tuple[T, int | None]], tail: bool
) -> Iterator[tuple[T, int | None]]:
    arrival = clock.block([t for _, t in pending[:WINDOW]], tail)
    block = pending[:BLOCK]
    del pending[:BLOCK]
    for item, _ in block:
        yield item, arrival
