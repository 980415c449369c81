"""Taking a topic partition in offset order from a saved position, whatever Faust committed.

faust-streaming 0.15 commits offsets of messages nobody processed:

- a stream acks, without yielding them, the messages fetched while flow control was suspended
  or in an older consumer generation (around a rebalance or a table recovery), counting on a
  seek to the committed offset to deliver them again;
- `Consumer._new_offset` commits the first run of consecutive acked offsets even when the
  message at the committed offset is not acked yet (no check before the first commit of a
  partition, and an off-by-one after it).

So a worker that restarts from the committed offset can start after messages whose effect it
never saved, and one that keeps its partitions through a rebalance can be handed offsets with a
hole before them. An agent whose state must reflect every message keeps its own position per
partition, next to that state, and takes deliveries through a `Cursor`: a message below the
position is a redelivery (its effect is saved: drop it), one above it comes after a gap, which
the agent reads back from the log (`runtime/resume.read_range`) and processes first.

>>> cursor = Cursor({"position/alerts/0": "10"})
>>> cursor.gap("alerts", 0, 7) is None  # saved before: a redelivery
True
>>> cursor.gap("alerts", 0, 12)  # 10 and 11 were never delivered
range(10, 12)
>>> cursor.took("alerts", 0, 12); cursor.gap("alerts", 0, 13)
range(13, 13)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Cursor", "read_gap"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Cursor:
    """Per (topic, partition): the next offset to take, from `positions` (a table) at first."""

    positions: MutableMapping[str, str]
    _next: dict[tuple[str, int], int] = field(default_factory=dict)
    _saved: dict[tuple[str, int], int] = field(default_factory=dict)

    def gap(self, topic: str, partition: int, offset: int) -> range | None:
        """The offsets missing before `offset` (empty: none); None for a redelivery."""
        expected = self.expected(topic, partition, offset)
        return None if offset < expected else range(expected, offset)

    def expected(self, topic: str, partition: int, offset: int) -> int:
        """The next offset to take: this life's, else the saved position, else `offset`."""
        tp = (topic, partition)
        if tp not in self._next:
            saved = self.positions.get(_key(topic, partition))
            self._next[tp] = self._saved[tp] = offset if saved is None else int(saved)
        return self._next[tp]

    def took(self, topic: str, partition: int, offset: int) -> None:
        self._next[(topic, partition)] = offset + 1

    def next(self, topic: str, partition: int) -> int:
        return self._next[(topic, partition)]

    def save(self, topic: str, partition: int, position: int) -> None:
        """Every message before `position` is saved: written (once) after what it vouches for."""
        tp = (topic, partition)
        if self._saved.get(tp) != position:
            self.positions[_key(topic, partition)] = str(position)
            self._saved[tp] = position

    def forget(self) -> None:
        """Partitions revoked: read the positions again from the table when they come back."""
        self._next.clear()
        self._saved.clear()


async def read_gap(
    label: str, missing: range, read: Callable[[int, int], Awaitable[list[T]]] | None
) -> list[T]:
    """The records of the `missing` offsets of partition `label` (Faust did not deliver them),
    read back from the log with `read(lo, hi)`; none to read for an empty range or no `read`.
    A gap with no record in the log is not a loss (transaction markers, compaction)."""
    if not missing:
        return []
    if read is None:
        log.warning("%s: offsets %d to %d were not delivered; no log to read them", label,
                    missing.start, missing.stop - 1)
        return []
    found = await read(missing.start, missing.stop)
    (log.warning if found else log.info)(
        "%s: offsets %d to %d were not delivered: read %d back from the log", label,
        missing.start, missing.stop - 1, len(found))
    return found


def _key(topic: str, partition: int) -> str:
    return f"position/{topic}/{partition}"
