"""The owners' write order, in one place: alerts → models → windows → position.

A partials message is handled by the owner of its partition (runtime/owner.py `Owners`), which
closes and saves only the metrics homed there: every write of a step lands in the changelog
partition of the message's own partition, as Faust routes it, so the worker that takes the
partition over after a rebalance restores exactly what that owner saved.

**Coalesced saves.** Alerts go out as windows close; a partition's *state* (the models of the
metrics that closed windows, the windows that changed, the position) is saved at once, as of
one message, only every `hold` windows closed by one of its metrics or every `save_every`
messages (a model saved on every close wrote 1.6 GB of changelog for 40% of a 2-day backlog of
100 metrics: docs/scale.md). A restart re-reads the partials messages after the last save
(at most `save_every`) from the log and closes those windows again, writing the same alert
records, verbatim (the notifier sends each once).

A crash (SIGKILL) can fall between any two writes; the order makes every such crash harmless:

1. **alerts** go onto their topic, delivered, before the model that raised them is saved: a
   crash before the model is saved replays the windows and writes the same records again;
2. **models**, then **windows**, then the **position** that vouches for them: per partials
   partition, the offset before which every message is saved (runtime/cursor.py). A save is
   several values, so a crash can cut it: each value is written to the other of two slots
   (`<metric>/model/0|1`, `<metric>/windows/0|1`) tagged with the position its save ends
   with, and a restarted owner takes, per value, the newest slot tagged at or before the saved
   position (deleting a slot tagged after it: a save the crash cut). Every metric of a
   partition is therefore restored as of one message, the position's: their shared state
   (interventions) too, and windows closed after it are scored again in
   the same order with the same state. The restarted or reassigned owner starts at the
   position, whatever Faust committed; a gap in what Faust delivers is read back from the log
   (`read_log`) first; a message re-read is dropped by its source offsets if its deltas were
   saved, merged if not.

Acks say progress only (consumer lag): each message is acked once processed, in order. Holding
them until the windows were saved, as before, bought nothing (Faust commits past unacked
messages anyway: cursor.py) and kept a stopping worker in Faust's `wait_empty` until it was
killed (20 s on every clean stop with open windows).

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

__all__ = ["HOLD", "SAVE_EVERY", "Checkpoint", "Slots"]

SAVE_EVERY = 500
"""Partials messages of a partition taken since its state was last saved before it is saved
(bounds what a restart re-reads, whatever closed)."""
HOLD = 16
"""Windows one metric closes before its partition's models are saved. Chosen on the 2-day
backlog of 100 metrics (benchmarks/scale_saves.py, seed 11; docs/scale.md): 1 / 4 / 16 / 64
wrote 2.98 / 1.73 / 0.63 / 0.51 GB, for 0.09 / 0.26 / 1.09 / 1.40 CPU-s re-done after a crash
(mean; max 4.9 to 7.9): 16 is the knee, past it `SAVE_EVERY` decides."""

Publish = Callable[[list[AlertRecord]], Awaitable[None]]
"""Writes alert records to the alerts topic; returns once the broker has them."""
Ack = Callable[[], None]
Flush = Callable[[], Awaitable[None]]
"""Returns once the table writes made so far are delivered (the changelog's producer): the
owner waits after each save, so that what it has yet to send stays one save's worth. Without
it, a lagging owner of 100 metrics held 465 pending values, 2.6 GB of RSS (docs/scale.md)."""
Position = tuple[int, int]
"""(partials partition, offset) of a message."""
ReadLog = Callable[[int, int, int], Awaitable[list[tuple[int, Report | Tick]]]]
"""(partition, lo, hi) -> the partials messages of offsets [lo, hi), in offset order."""

PARTIALS = "partials"
"""The cursor's name for the partials topic (`position/partials/<partition>` in the table)."""


def _noop() -> None:
    """The ack of a message read back from the log (Faust never delivered it)."""


@dataclass
class _Unsaved:
    """What a partition's owner changed since its state was last saved."""

    messages: int = 0
    dirty: set[str] = field(default_factory=set)  # metrics whose windows changed
    closes: Counter[str] = field(default_factory=Counter)  # metric -> windows closed (held)
    shared: str | None = None  # a metric whose report brought governance actions (see _save)


@dataclass
class Checkpoint:
    """Runs the owner of its partition on each partials message and persists what it changed,
    in order, a partition's state at once: every `hold` windows some metric closed, or every
    `save_every` messages.

    `table` holds text values (Faust restores a changelog with the table's own serializer,
    whatever wrote it, so the snapshots' bytes travel as base64).
    """

    owners: Owners
    table: MutableMapping[str, str]
    publish: Publish
    save_every: int = SAVE_EVERY
    read_log: ReadLog | None = None  # None: a gap is taken as it comes (with a warning)
    hold: int = HOLD
    flush: Flush | None = None  # after a save: its writes delivered (None: not waited for)
    _cursor: Cursor = field(init=False)  # the position per partition (in `table`)
    _slots: Slots = field(init=False)  # the snapshots, two slots each (in `table`)
    _unsaved: dict[int, _Unsaved] = field(default_factory=dict)  # per partition

    def __post_init__(self) -> None:
        self._cursor = Cursor(self.table)
        self._slots = Slots(self.table)

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
        """One partials message: merge (or tick), close, publish; save the partition's state
        when due, in order; then ack."""
        self._cursor.took(PARTIALS, *at)
        owner = self._owner(msg, at[0])
        if owner is None:
            ack()
            return Closed.combine([])
        unsaved = self._unsaved.get(at[0]) or self._start(*at)
        unsaved.messages += 1
        if isinstance(msg, Report):
            unsaved.dirty.add(msg.metric)
            if msg.interventions:
                unsaved.shared = msg.metric
            closed = owner.on_report(msg)
        else:
            closed = owner.on_tick(msg)
        if closed.windows:
            await self.publish(closed.alerts)
            unsaved.closes.update(closed.closes)
        if self._due(unsaved):
            self._save(owner, at[0], unsaved)
            if self.flush is not None:
                await self.flush()
        ack()
        return closed

    def _start(self, partition: int, offset: int) -> _Unsaved:
        """Changes of `partition` from `offset` on; a partition with no saved position is
        given one first, there (the start of its log: else a restart before its first save
        would start wherever Faust committed, after messages never saved)."""
        if self.table.get(_position_key(partition)) is None:  # (the cursor took `offset`
            self.table[_position_key(partition)] = str(offset)  # as its start already)
        unsaved = self._unsaved[partition] = _Unsaved()
        return unsaved

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
                    self.adopt(owner, name, partition, msg.sent_ms)
        return owner

    def adopt(self, owner: Owner, metric: str, partition: int, now_ms: int) -> None:
        """`owner` takes `metric` over from what the table holds as of the partition's saved
        position (nothing: a fresh start)."""
        saved = self.table.get(_position_key(partition))
        position = None if saved is None else int(saved)
        owner.adopt(metric, self._slots.read(f"{metric}/windows", position),
                    self._slots.read(f"{metric}/model", position), now_ms)

    def revoke(self) -> None:
        """The partials partitions went elsewhere: forget what was not saved (redelivered to
        the new owner, which drops what was) and every owner (made again from the table)."""
        self._cursor.forget()
        self._slots.forget()
        self._unsaved.clear()
        self.owners.release()

    def _due(self, unsaved: _Unsaved) -> bool:
        held = max(unsaved.closes.values(), default=0)
        return held >= self.hold or unsaved.messages >= self.save_every

    def _save(self, owner: Owner, partition: int, unsaved: _Unsaved) -> None:
        """The partition's state as of now: the models of the metrics that closed windows,
        then the windows that changed, then the position vouching for both. The state shared
        by the partition's metrics (governance actions) rides in every model and the newest
        one restored wins, so governance actions told since the last save need one model saved
        even when no window closed."""
        position = self._cursor.next(PARTIALS, partition)
        models = set(unsaved.closes) | ({unsaved.shared} if unsaved.shared else set())
        for name in sorted(models):
            self._slots.write(f"{name}/model", position, owner.snapshot_model(name))
        for name in sorted(unsaved.dirty | models):
            self._slots.write(f"{name}/windows", position, owner.snapshot_windows(name))
        del self._unsaved[partition]
        self._cursor.save(PARTIALS, partition, position)


@dataclass
class Slots:
    """Snapshots in two slots per key, each tagged with the position of the save that wrote
    it: a write never overwrites the newest saved value, so a save cut by a crash leaves the
    previous one readable.

    >>> table: dict[str, str] = {}
    >>> slots = Slots(table)
    >>> slots.write("gmv/model", 10, b"a"); slots.write("gmv/model", 20, b"b")
    >>> sorted(table)
    ['gmv/model/0', 'gmv/model/1']
    >>> Slots(table).read("gmv/model", 20), Slots(table).read("gmv/model", 15)
    (b'b', b'a')
    >>> sorted(table)  # the slot tagged 20 was a save cut before position 20 was saved
    ['gmv/model/0']
    """

    table: MutableMapping[str, str]
    _newest: dict[str, int] = field(default_factory=dict)  # key -> slot of its newest value

    def read(self, key: str, position: int | None) -> bytes | None:
        """The newest value of `key` saved at or before `position` (None: nothing saved);
        slots tagged after it are deleted. A value from before slots (`key` itself) counts
        as saved."""
        best: tuple[int, int, str] | None = None
        for slot in (0, 1):
            text = self.table.get(f"{key}/{slot}")
            if text is None:
                continue
            tag, _, body = text.partition(":")
            if position is None or int(tag) > position:
                del self.table[f"{key}/{slot}"]
            elif best is None or int(tag) > best[0]:
                best = (int(tag), slot, body)
        if best is None:
            return _unpack(self.table.get(key))
        self._newest[key] = best[1]
        return _unpack(best[2])

    def write(self, key: str, position: int, blob: bytes) -> None:
        """`blob` into the slot not holding the newest value of `key`, tagged `position`."""
        slot = 1 - self._newest.get(key, 1)
        self.table[f"{key}/{slot}"] = f"{position}:{base64.b64encode(blob).decode('ascii')}"
        self._newest[key] = slot

    def forget(self) -> None:
        """Partitions revoked: which slot is newest is read again from the table."""
        self._newest.clear()


def _position_key(partition: int) -> str:
    """runtime/cursor.py's key of the partials position of `partition`."""
    return f"position/{PARTIALS}/{partition}"


def _unpack(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None
