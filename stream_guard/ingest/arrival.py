"""When did a record of a file arrive? A robust estimate of stream time, for event-time sanity.

Live, a record's arrival time is its Kafka timestamp, and an event dated more than `MAX_SKEW_MS`
after it is refused as `future_timestamp` (aggregate/source.py). A file has no arrival times, so
replay (and `stream-guard produce`, which stamps records with them) estimates one per record from
the event times around it: the lower median of the `WINDOW` records starting at the record's
block of `BLOCK` records (the last `WINDOW` records at the end of the input), never decreasing.
A median ignores any minority of wild timestamps (up to half the window, clustered or not), and
a genuine jump in time (a gap in the data) moves it as soon as the records after the jump are
the majority. The allowance beyond it is the window's spread (3 x its interquartile range) when
that is larger than `MAX_SKEW_MS`: a sparse stream (one record an hour) is not "in the future"
because its median lags by a few records.

>>> times = [1_000 * i for i in range(200)]
>>> times[120] = 10**12  # one record far in the future
>>> stamped = list(arrival_times(times, lambda t: t))
>>> [t for t, arrival in stamped if t > arrival + MAX_SKEW_MS]
[1000000000000]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TypeVar

__all__ = ["BLOCK", "MAX_SKEW_MS", "WINDOW", "arrival_times", "is_future"]

MAX_SKEW_MS = 5 * 60_000
"""How far ahead of its arrival an event may be dated (client clock skew)."""
WINDOW = 64
BLOCK = 32
SPREAD = 3

T = TypeVar("T")


def is_future(ts_ms: int, arrival_ms: int | None) -> bool:
    """The one rule, live and replay: dated more than the allowed skew after it arrived."""
    return arrival_ms is not None and ts_ms > arrival_ms + MAX_SKEW_MS


def arrival_times(
    items: Iterable[T], time_of: Callable[[T], int | None]
) -> Iterator[tuple[T, int | None]]:
    """Each item, in order, with its estimated arrival time (None until a time is known).

    The returned arrival already includes the sparse-stream allowance: pass it to `is_future`.
    """
    pending: deque[tuple[T, int | None]] = deque()
    history: deque[int] = deque(maxlen=WINDOW)
    clock: int | None = None
    for item in items:
        pending.append((item, time_of(item)))
        if len(pending) >= WINDOW:
            clock = yield from _block(pending, history, clock, tail=False)
    while pending:
        clock = yield from _block(pending, history, clock, tail=True)


def _block(
    pending: deque[tuple[T, int | None]], history: deque[int], clock: int | None, tail: bool
) -> Generator[tuple[T, int | None], None, int | None]:
    window = [t for _, t in pending if t is not None]
    if tail:  # the end of the input: the last WINDOW times, those already passed included
        window = (list(history) + window)[-WINDOW:]
    window = sorted(window[:WINDOW])
    arrival = clock
    if window:
        median = window[(len(window) - 1) // 2]
        clock = median if clock is None else max(clock, median)
        spread = SPREAD * (window[3 * len(window) // 4] - window[len(window) // 4])
        arrival = clock + max(0, spread - MAX_SKEW_MS)
    for _ in range(min(BLOCK, len(pending))):
        item, t = pending.popleft()
        if t is not None:
            history.append(t)
        yield item, arrival
    return clock
