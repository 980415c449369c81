"""Exact order statistics over a sliding window, the building block of our robust baselines.

Medians and inter-quantile ranges of the last ``size`` values are robust to the very outliers
we want to detect, unlike means and standard deviations. A sorted list maintained with
`bisect` costs O(log n) comparisons plus one ``memmove`` per update, which for windows of a few
thousand floats is about a microsecond: cheaper than approximate sketches at these sizes, and
exact, so replays are bit-for-bit reproducible.
"""

from __future__ import annotations

import bisect
from collections import deque

__all__ = ["RollingQuantiles"]


class RollingQuantiles:
    """Sorted view of the last ``size`` values seen.

    >>> rq = RollingQuantiles(size=5)
    >>> for v in [5.0, 1.0, 4.0, 2.0, 3.0, 100.0]:
    ...     rq.update(v)
    >>> len(rq), rq.quantile(0.5), rq.quantile(0.0), rq.quantile(1.0)
    (5, 3.0, 1.0, 100.0)
    >>> rq.fraction_at_least(4.0)
    0.4
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self._fifo: deque[float] = deque()
        self._sorted: list[float] = []

    def update(self, x: float) -> None:
        """Add ``x``, evicting the oldest value once the window is full."""
        if len(self._fifo) == self.size:
            old = self._fifo.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._fifo.append(x)
        bisect.insort(self._sorted, x)

    def __len__(self) -> int:
        return len(self._sorted)

    def clear(self) -> None:
        """Forget every value (the window size stays)."""
        self._fifo.clear()
        self._sorted.clear()

    def quantile(self, q: float) -> float:
        """The ``q``-quantile with linear interpolation between order statistics."""
        s = self._sorted
        pos = q * (len(s) - 1)
        lo = int(pos)
        if lo + 1 >= len(s):
            return s[-1]
        return s[lo] + (s[lo + 1] - s[lo]) * (pos - lo)

    def fraction_at_least(self, x: float) -> float:
        """Share of the window that is ``>= x`` (an empirical upper-tail probability)."""
        s = self._sorted
        return (len(s) - bisect.bisect_left(s, x)) / len(s)

    def top(self, k: int) -> list[float]:
        """The ``k`` largest values, ascending."""
        return self._sorted[-k:] if k > 0 else []

    def last(self) -> float:
        """The most recently added value."""
        return self._fifo[-1]
