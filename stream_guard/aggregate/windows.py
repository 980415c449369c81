"""② source half: one source partition's event-time windows, handed on as mergeable deltas.

One `WindowAggregator` per source partition, live and in replay. Its watermark is a robust
estimate of the partition's event time: the `ROBUST_RANK`-th largest event time accepted, so no
single event (nor two) can move it. An event whose window the watermark has passed by more than
the metric's allowed lateness is *late*: counted, never merged. The source never closes a
window: `take_open` hands its deltas to the window merger (merger.py), which decides, for every
source at once, when a window is complete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from stream_guard.aggregate.plan import (
    LEAF_MARK,
    Contribution,
    OpenWindow,
    compile_function,
    compile_plans,
    feeder_env,
    feeder_lines,
    leaf_key,
    slot_key,
)
from stream_guard.config.rules import MetricRule
from stream_guard.types import SliceKey

__all__ = [
    "OTHER", "ROBUST_RANK", "SELLERS_KEPT", "SOURCE_SLICES_PER_SERIES", "Accumulators",
    "Partial", "WindowAggregator", "heavy_hitters", "merge_into",
]

Accumulators = dict[SliceKey, list[float]]
K = TypeVar("K", bound=Hashable)

ROBUST_RANK = 3
"""The watermark is the 3rd largest event time seen: robust to two outlying events."""
SOURCE_SLICES_PER_SERIES = 10
"""A source window holds up to 10 x max_series slices; beyond (a flood of junk values), new
values go to their dimension's `other` at once. The owner decides which slices get a series
(points.py): with room for 10x, a flood does not crowd out real slices before that."""
OTHER = "other"
_NO_TIME = -(2**63)  # before any event time: an empty slot of the top-3
KEYS_KEPT = 10_000
"""Slice keys remembered per source, metric and slot (raw value -> key); beyond, started over."""
SELLERS_KEPT = 256
"""Sellers one source window counts at most (a Misra-Gries summary: `heavy_hitters`)."""


def heavy_hitters(
    slices: Accumulators, lookup: dict[Any, list[float]], key_of: Callable[[Any], SliceKey],
    other: list[float],
) -> int:
    """Misra-Gries, batched: every counter of `lookup` (raw seller -> its accumulator in
    `slices`, under `key_of(raw)`) drops by the median count, and those left at zero go; what
    was taken goes to `other`, so the window's seller counts still add up to its events.
    A seller with more than 2/`SELLERS_KEPT` of the window's updates is never dropped, and the
    summaries merge by addition (Agarwal et al. 2012, "Mergeable summaries"). Runs once per
    `SELLERS_KEPT` / 2 new sellers: amortised O(1) per event. Returns how many keys went.

    >>> slices = {(("@s", k),): [n, 0.0] for k, n in (("a", 5.0), ("b", 1.0), ("c", 2.0))}
    >>> other = slices[(("@s", "other"),)] = [0.0, 0.0]
    >>> lookup = {k: slices[(("@s", k),)] for k in "abc"}
    >>> heavy_hitters(slices, lookup, lambda k: (("@s", k),), other), lookup, other
    (2, {'a': [3.0, 0.0]}, [5.0, 0.0])
    """
    cut = sorted(acc[0] for acc in lookup.values())[len(lookup) // 2]
    gone = 0
    for raw, acc in list(lookup.items()):
        if acc is other:
            continue
        taken = min(acc[0], cut)
        acc[0] -= taken
        other[0] += taken
        if acc[0] <= 0:
            other[1] += acc[1]
            del lookup[raw]
            del slices[key_of(raw)]
            gone += 1
    return gone


def _cube_acc(w: OpenWindow, key: SliceKey) -> list[float]:
    """The accumulator of a leaf or seller key in `w`, created (and counted) if new."""
    acc = w.slices.get(key)
    if acc is None:
        acc = w.slices[key] = [0.0, 0.0]
        w.cube += 1
    return acc


def merge_into(acc: Accumulators, deltas: Accumulators) -> None:
    """Adds `deltas` to `acc`, slice by slice, in place."""
    for key, (a, b) in deltas.items():
        add_into(acc, key, a, b)


def add_into(acc: dict[K, list[float]], key: K, a: float, b: float) -> None:
    """Adds (a, b) to the slice `key` of `acc`, in place."""
    cur = acc.get(key)
    if cur is None:
        acc[key] = [a, b]
    else:
        cur[0] += a
        cur[1] += b


@dataclass(frozen=True, slots=True)
class Partial:
    """One source's accumulators for one metric window (possibly empty: "nothing here")."""

    metric_index: int
    window_start_ms: int
    slices: Accumulators


_WATERMARK = """\
    if ts > top[0]:
        if ts > top[1]:
            top[0] = top[1]
            if ts > top[2]:
                top[1] = top[2]
                top[2] = ts
            else:
                top[1] = ts
        else:
            top[0] = ts"""
"""Keeps `top` (the 3 largest event times, ascending) with a few comparisons, no sort."""
_MAX_TS = """\
    max_ts = top[0]
    if max_ts == NO_TIME:
        max_ts = top[1] if top[1] != NO_TIME else top[2]"""
"""The watermark, this event included (fewer than ROBUST_RANK events: the smallest of them)."""


class WindowAggregator:
    def __init__(self, rules: list[MetricRule]) -> None:
        self.rules = rules
        self._plans = compile_plans(rules)
        self._width = [int(r.window.total_seconds() * 1000) for r in rules]
        self._lateness = [int(r.lateness.total_seconds() * 1000) for r in rules]
        self._max_slices = [SOURCE_SLICES_PER_SERIES * r.max_series for r in rules]
        self._open: list[dict[int, OpenWindow]] = [{} for _ in rules]
        self._shape: dict[int, Contribution] = {}  # per metric, one with its seller if any
        for c in (c for plan in self._plans.values() for c in plan):
            if c.seller or c.metric_index not in self._shape:
                self._shape[c.metric_index] = c
        self._cube_slot = [self._shape[m].leaf_slot if m in self._shape else 0
                           for m in range(len(rules))]  # the first leaf or seller slot
        self._leaf_slot = [c if m in self._shape and self._shape[m].leaf else -1
                           for m, c in enumerate(self._cube_slot)]
        self._keys: list[list[dict[Any, SliceKey]]] = [  # [metric][slot]: raw -> slice key
            [{} for _ in range(self._shape[m].slots if m in self._shape else 0)]
            for m in range(len(rules))]
        self._top = [_NO_TIME] * ROBUST_RANK  # the 3 largest event times, ascending
        self._adders: dict[str, Callable[[int, Mapping[str, Any]], None]] = {}
        self.late: Counter[tuple[str, str]] = Counter()  # (topic, metric) -> events
        self.dropped_series: Counter[str] = Counter()  # metric -> updates folded at the cap

    @property
    def watermark_ms(self) -> int | None:
        """The ROBUST_RANK-th largest event time seen (fewer events: the smallest of them)."""
        return next((t for t in self._top if t != _NO_TIME), None)

    def topics(self) -> frozenset[str]:
        return frozenset(self._plans)

    def compile(
        self, topic: str, signature: str, head: list[str], env: dict[str, Any]
    ) -> Callable[..., Any]:
        """A generated function taking an event of `topic` (``ts``, ``obj``): `head` first
        (it may return: the event is not counted), then the watermark, then every window.

        `env` holds what `head` reads; the aggregator adds what the rest reads."""
        plan = self._plans.get(topic, [])
        leaves = {m: self._leaf_admitter(m) for m in range(len(self.rules))
                  if self._leaf_slot[m] >= 0}
        env.update(feeder_env(plan, self._open, self._admit, self._late, leaves),
                   top=self._top, NO_TIME=_NO_TIME)
        lines = [*head, *_WATERMARK.splitlines()]
        if plan:
            lines += [*_MAX_TS.splitlines(), *feeder_lines(topic, plan, self._lateness)]
        return compile_function(f"feeder {topic}", signature, lines, env)

    def add(self, topic: str, ts_ms: int, obj: Mapping[str, Any]) -> None:
        """Counts one validated event into every metric window it belongs to.

        Late = its window ended more than the lateness before the watermark: the verdict
        depends on the events this source has seen so far, never on when windows close.
        """
        adder = self._adders.get(topic)
        if adder is None:
            adder = self._adders[topic] = self.compile(topic, "add(ts, obj)", [], {})
        adder(ts_ms, obj)

    def _admit(self, w: OpenWindow, m: int, slot: int, raw: Any) -> list[float]:
        keys = self._keys[m][slot]
        key = keys.get(raw)
        if key is None:  # kept across hand-overs: a value's key is built once (bounded)
            if len(keys) >= KEYS_KEPT:
                keys.clear()
            key = keys[raw] = slot_key(self._shape[m], slot, raw)
        if slot >= self._cube_slot[m]:
            return self._admit_cube(w, m, slot, raw, key)
        slices = w.slices
        if len(slices) - w.cube < self._max_slices[m]:
            acc = slices.setdefault(key, [0.0, 0.0])  # one hash of the key, not two
        elif key in slices:
            acc = slices[key]
        else:  # a flood: into the dimension's `other`, not remembered for `raw` (every
            self.dropped_series[self.rules[m].metric] += 1  # update of it is counted)
            return slices.setdefault(tuple((d, OTHER) for d, _ in key), [0.0, 0.0])
        w.lookups[slot][raw] = acc
        return acc

    def _leaf_admitter(self, m: int) -> Callable[[OpenWindow, Any], list[float]]:
        """Metric m's leaves beyond `max_series` in a window (a flood of junk values): all
        into the all-`other` leaf, among the slices at once (`_leaves_into`)."""
        dims = self._shape[m].leaf

        def flood(w: OpenWindow, raw: Any) -> list[float]:
            return _cube_acc(w, tuple((LEAF_MARK + d, OTHER) for d in dims))

        return flood

    def _leaves_into(self, m: int, w: OpenWindow) -> None:
        """The window's leaves (kept by raw values while it gathers: a new leaf costs a list)
        joining its slices under their keys, at hand-over."""
        slot = self._leaf_slot[m]
        if slot < 0 or not w.lookups[slot]:
            return
        keys, dims, slices = self._keys[m][slot], self._shape[m].leaf, w.slices
        if len(keys) >= KEYS_KEPT:
            keys.clear()
        for raw, acc in w.lookups[slot].items():
            key = keys.get(raw)
            if key is None:  # kept across hand-overs: a leaf's key is built once (bounded)
                key = keys[raw] = leaf_key(dims, raw)
            cur = slices.get(key)
            if cur is None:
                slices[key] = acc
                w.cube += 1
            else:  # a raw leaf of "other" values meets the flood's leaf
                cur[0] += acc[0]
                cur[1] += acc[1]

    def _admit_cube(
        self, w: OpenWindow, m: int, slot: int, raw: Any, key: SliceKey
    ) -> list[float]:
        """A leaf or seller new in `w`: up to `max_series` leaves (beyond, a flood of junk
        values: the all-`other` leaf); sellers in a Misra-Gries summary of `SELLERS_KEPT`."""
        lookup = w.lookups[slot]
        if slot == self._leaf_slot[m]:
            if len(lookup) >= self.rules[m].max_series:
                key = tuple((d, OTHER) for d, _ in key)
                raw = None  # not remembered: every update of a flood goes through here
        elif len(lookup) >= SELLERS_KEPT:
            other = _cube_acc(w, ((key[0][0], OTHER),))
            w.cube -= heavy_hitters(w.slices, lookup, partial(slot_key, self._shape[m], slot),
                                    other)
        acc = _cube_acc(w, key)
        if raw is not None:
            lookup[raw] = acc
        return acc

    def _late(self, topic: str, m: int) -> None:
        self.late[(topic, self.rules[m].metric)] += 1

    def take_open(self) -> list[Partial]:
        """Hands over (and forgets) what every open window gathered since the last call.

        A live source sends these deltas on and keeps nothing: the owner of the metric merges
        them and decides when a window closes. Lateness is still judged here, by this source's
        watermark.
        """
        for m, windows in enumerate(self._open):
            for window in windows.values():
                self._leaves_into(m, window)
        out = [Partial(m, start, window.slices) for m, windows in enumerate(self._open)
               for start, window in sorted(windows.items())]
        for windows in self._open:
            windows.clear()
        return out
