"""The owners' write order, in one place: alerts → models → windows → position.

A partials message is handled by the owner of its partition (runtime/owner.py `Owners`), which
closes and saves only the metrics homed there: every write of a step lands in the changelog
partition of the message's own partition, as Faust routes it, so the worker that takes the
partition over after a rebalance restores exactly what that owner saved.

A crash (SIGKILL) can fall between any two writes; the order makes every such crash harmless:

1. **alerts** go onto their topic, delivered, before the model that raised them is saved: a
   crash before the model is saved replays the windows and writes the same records again,
   verbatim (the notifier sends each once);
2. **models** (per metric whose windows closed) before the **windows** they closed: a model
   ahead of its windows drops, on adoption, the open windows it has scored (runtime/owner.py);
3. **windows** (the merger's state, with the source offsets merged) before the **position**
   that vouches for them: per partials partition, the offset before which every message is
   saved (runtime/cursor.py). A restarted or reassigned owner starts there, whatever Faust
   committed; a gap in what Faust delivers is read back from the log (`read_log`) first; a
   message re-read is dropped by its source offsets if its deltas were saved, merged if not.

Acks say progress only (consumer lag): each message is acked once processed, in order. Holding
them until the windows were saved, as before, bought nothing (Faust commits past unacked
messages anyway: cursor.py) and kept a stopping worker in Faust's `wait_empty` until it was
killed (20 s on every clean stop with open windows).

Windows are saved when windows close, on every tick of the metric and every `save_every`
messages, never per message (a table write per report filled Faust's producer buffer).
`tests/unit/runtime/test_checkpoint.py` crashes between every pair of writes against a
dict-backed table and checks the restarted owner gives the alerts of an uninterrupted run.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field

from stream_guard.runtime.cursor import Cursor, read_gap
from stream_guard.runtime.owner import Closed, Owner, Owners
from stream_guard.runtime.reports import Report, Tick
from stream_guard.types import AlertRecord

__all__ = ["SAVE_EVERY", "Checkpoint"]

SAVE_EVERY = 500
"""Partials messages an owner merges into a metric's windows before it saves them."""

Publish = Callable[[list[AlertRecord]], Awaitable[None]]
"""Writes alert records to the alerts topic; returns once the broker has them."""
Ack = Callable[[], None]
Position = tuple[int, int]
"""(partials partition, offset) of a message."""
ReadLog = Callable[[int, int, int], Awaitable[list[tuple[int, Report | Tick]]]]
"""(partition, lo, hi) -> the partials messages of offsets [lo, hi), in offset order."""

PARTIALS = "partials"
"""The cursor's name for the partials topic (`position/partials/<partition>` in the table)."""


def _noop() -> None:
    """The ack of a message read back from the log (Faust never delivered it)."""


@dataclass
class Checkpoint:
    """Runs the owner of its partition on each partials message and persists what it changed,
    in order.

    `table` holds text values (Faust restores a changelog with the table's own serializer,
    whatever wrote it, so the snapshots' bytes travel as base64).
    """

    owners: Owners
    table: MutableMapping[str, str]
    publish: Publish
    save_every: int = SAVE_EVERY
    read_log: ReadLog | None = None  # None: a gap is taken as it comes (with a warning)
    _cursor: Cursor = field(init=False)  # the position per partition (in `table`)
    _first_unsaved: dict[str, Position] = field(default_factory=dict)  # per metric
    _unsaved: Counter[str] = field(default_factory=Counter)  # metric -> messages since saved
    _dirty: set[str] = field(default_factory=set)  # reports merged since windows were saved

    def __post_init__(self) -> None:
        self._cursor = Cursor(self.table)

    async def on_message(self, at: Position, msg: Report | Tick, ack: Ack) -> Closed:
        """A partials message as Faust delivered it, taken in offset order from where the saved
        state ends (runtime/cursor.py): an old one is dropped, a gap before it is read back from
        the log first."""
        missing = self._cursor.gap(PARTIALS, *at)
        if missing is None:
            ack()  # its effect is saved (a redelivery after a restart or rebalance)
            return Closed.combine([])
        read = self.read_log
        steps = [await self.step(gap_msg, _noop, (at[0], gap_offset))
                 for gap_offset, gap_msg in await read_gap(
                     f"{PARTIALS}/{at[0]}", missing,
                     None if read is None else lambda lo, hi: read(at[0], lo, hi))]
        steps.append(await self.step(msg, ack, at))
        return Closed.combine(steps)

    async def step(self, msg: Report | Tick, ack: Ack, at: Position) -> Closed:
        """One partials message: merge (or tick), close, save in order, then ack."""
        self._cursor.took(PARTIALS, *at)
        owner = self._owner(msg, at[0])
        if owner is None:
            ack()
            return Closed.combine([])
        metric = msg.metric
        self._first_unsaved.setdefault(metric, at)
        self._unsaved[metric] += 1
        if isinstance(msg, Report):
            self._dirty.add(metric)
            closed = owner.on_report(msg)
        else:
            closed = owner.on_tick(msg)
        if closed.windows:
            await self.publish(closed.alerts)
            for name in sorted(closed.metrics):
                self.table[f"{name}/model"] = _pack(owner.snapshot_model(name))
        if closed.windows or isinstance(msg, Tick) or self._due(metric):
            self._save_windows(owner, closed.metrics | ({metric} & self._dirty))
            self._saved(closed.metrics | {metric})
            self._save_position(at[0])
        ack()
        return closed

    def _owner(self, msg: Report | Tick, partition: int) -> Owner | None:
        """The owner of `metric` on its home `partition`, every metric homed there adopted
        together (so that their windows keep one order after a restart too); None, counted,
        for a message on another partition than its metric's home."""
        metric, owner = msg.metric, self.owners.of(partition)
        if owner is None or metric not in owner.index:
            self.owners.misrouted(metric, partition)
            return None
        if not owner.owns(metric):
            for name in self.owners.metrics(partition):
                if not owner.owns(name):
                    self.adopt(owner, name, msg.sent_ms)
        return owner

    def adopt(self, owner: Owner, metric: str, now_ms: int) -> None:
        """`owner` takes `metric` over from what the table holds (nothing: a fresh start)."""
        owner.adopt(metric, _unpack(self.table.get(f"{metric}/windows")),
                    _unpack(self.table.get(f"{metric}/model")), now_ms)

    def revoke(self) -> None:
        """The partials partitions went elsewhere: forget what was not saved (redelivered to
        the new owner, which drops what was) and every owner (made again from the table)."""
        self._cursor.forget()
        self._first_unsaved.clear()
        self._unsaved.clear()
        self._dirty.clear()
        self.owners.release()

    def _due(self, metric: str) -> bool:
        return self._unsaved[metric] >= self.save_every

    def _saved(self, metrics: frozenset[str] | set[str]) -> None:
        """Everything delivered so far for `metrics` is saved."""
        for name in metrics:
            self._first_unsaved.pop(name, None)
            self._unsaved.pop(name, None)

    def _save_position(self, partition: int) -> None:
        """The offset of `partition` before which every message is saved (after the windows)."""
        self._cursor.save(PARTIALS, partition, min(
            (at[1] for at in self._first_unsaved.values() if at[0] == partition),
            default=self._cursor.next(PARTIALS, partition)))

    def _save_windows(self, owner: Owner, metrics: frozenset[str] | set[str]) -> None:
        for name in sorted(metrics):
            self.table[f"{name}/windows"] = _pack(owner.snapshot_windows(name))
            self._dirty.discard(name)


def _pack(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _unpack(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None
