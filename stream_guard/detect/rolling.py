"""Exact order statistics over a sliding window, the building block of our robust baselines.

Medians and inter-quantile ranges of the last ``size`` values are robust to the very outliers
we want to detect, unlike means and standard deviations. A sorted list maintained with
`bisect` costs O(log n) comparisons plus one ``memmove`` per update, which for windows of a few
thousand floats is about a microsecond: cheaper than approximate sketches at these sizes, and
exact, so replays are bit-for-bit reproducible.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from typing import Any

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

    def __getstate__(self) -> dict[str, Any]:
        """Only the window, in arrival order, as packed doubles: the sorted view is the same
        values again, rebuilt on load. Halves what a saved detector weighs (a worker persists
        one per metric and slice), and 8 bytes a value rather than pickle's 9."""
        return {"size": self.size, "fifo": array("d", self._fifo).tobytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "fifo" not in state:  # saved before the packed format: the plain attributes
            self.__dict__.update(state)
            return
        values = array("d")
        values.frombytes(state["fifo"])
        self.size = state["size"]
        self._fifo = deque(values)
        self._sorted = sorted(values)

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

    def quantile_after(self, x: float, q: float) -> float:
        """The ``q``-quantile the window would have after ``update(x)``, without updating.

        A detector scores a point before learning it, and some statistics of the point's own
        window include it: this reads them in O(log n), without copying the window.
        """
        s = self._sorted
        gone = bisect.bisect_left(s, self._fifo[0]) if len(self._fifo) == self.size else None
        n = len(s) + (gone is None)
        below = bisect.bisect_left(s, x)  # where x enters, counted in the current window
        if gone is not None and gone < below:
            below -= 1

        def at(j: int) -> float:  # j-th smallest of the updated window
            if j == below:
                return x
            j = j if j < below else j - 1  # index among the kept old values
            return s[j + 1] if gone is not None and j >= gone else s[j]

        pos = q * (n - 1)
        lo = int(pos)
        if lo + 1 >= n:
            return at(n - 1)
        return at(lo) + (at(lo + 1) - at(lo)) * (pos - lo)

    def fraction_at_least(self, x: float) -> float:
        """Share of the window that is ``>= x`` (an empirical upper-tail probability)."""
        s = self._sorted
        return (len(s) - bisect.bisect_left(s, x)) / len(s)

    def top(self, k: int) -> list[float]:
        """The ``k`` largest values, ascending."""
        return self._sorted[-k:] if k > 0 else []

    def first(self) -> float:
        """The oldest value in the window (the next to be evicted once it is full)."""
        return self._fifo[0]

    def last(self) -> float:
        """The most recently added value."""
        return self._fifo[-1]
