"""② source half: one source partition's event-time windows, handed on as mergeable deltas.

One `WindowAggregator` per source partition, live and in replay. Its watermark is a robust
estimate of the partition's event time: the `ROBUST_RANK`-th largest event time accepted, so no
single event (nor two) can move it. An event whose window the watermark has passed by more than
the metric's allowed lateness is *late*: counted, never merged. The source never closes a
window: `take_open` hands its deltas to the window merger (merger.py), which decides, for every
source at once, when a window is complete.

A metric's leaf cube and sellers (aggregate/cube.py) are gathered apart, across batches, and
handed over once per window: with the first `take_open` after this source's watermark passed
the window's close point (end + lateness), when every later event of the window is late here.
A restarted source rebuilds the cubes it had not handed over by re-reading its partition's
recent records (`SourceStage.warm`), which hand over exactly what the crashed one would have.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.aggregate.cube import OTHER, SELLERS_KEPT, WindowCube, add_into, heavy_hitters
from stream_guard.aggregate.plan import (
    Contribution,
    OpenWindow,
    compile_function,
    compile_plans,
    feeder_env,
    feeder_lines,
    slot_key,
)
from stream_guard.config.rules import MetricRule
from stream_guard.types import SliceKey

__all__ = [
    "OTHER", "ROBUST_RANK", "SELLERS_KEPT", "SOURCE_SLICES_PER_SERIES",
    "Accumulators", "Partial", "WindowAggregator", "add_into", "by_metric", "merge_into",
]

Accumulators = dict[SliceKey, list[float]]

ROBUST_RANK = 3
"""The watermark is the 3rd largest event time seen: robust to two outlying events."""
SOURCE_SLICES_PER_SERIES = 10
"""A source window holds up to 10 x max_series slices; beyond (a flood of junk values), new
values go to their dimension's `other` at once. The owner decides which slices get a series
(points.py): with room for 10x, a flood does not crowd out real slices before that."""
_NO_TIME = -(2**63)  # before any event time: an empty slot of the top-3
KEYS_KEPT = 10_000
"""Slice keys remembered per source, metric and slot (raw value -> key); beyond, started over."""


def merge_into(acc: Accumulators, deltas: Accumulators) -> None:
    """Adds `deltas` to `acc`, slice by slice, in place."""
    for key, (a, b) in deltas.items():
        add_into(acc, key, a, b)


@dataclass(frozen=True, slots=True)
class Partial:
    """One source's accumulators for one metric window (possibly empty: "nothing here"), and
    the window's cube when this source hands it over (once: see the module docstring)."""

    metric_index: int
    window_start_ms: int
    slices: Accumulators
    cube: WindowCube | None = None


def by_metric(
    partials: list[Partial], metrics: int
) -> tuple[list[list[tuple[int, Accumulators]]], list[list[tuple[int, WindowCube]]]]:
    """Per metric index, what a source hands its window merger: the windows' deltas (a window
    whose cube goes over alone has none) and the cubes handed over. The one split both
    drivers use (backtest/replay.py, runtime/sources.py), so they merge the same things.

    >>> deltas, cubes = by_metric([Partial(1, 0, {(): [1.0, 1.0]}), Partial(1, 60, {})], 2)
    >>> deltas, cubes
    ([[], [(0, {(): [1.0, 1.0]})]], [[], []])
    """
    deltas: list[list[tuple[int, Accumulators]]] = [[] for _ in range(metrics)]
    cubes: list[list[tuple[int, WindowCube]]] = [[] for _ in range(metrics)]
    for part in partials:
        if part.slices:
            deltas[part.metric_index].append((part.window_start_ms, part.slices))
        if part.cube is not None:
            cubes[part.metric_index].append((part.window_start_ms, part.cube))
    return deltas, cubes


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
        self._held: list[dict[int, WindowCube]] = [{} for _ in rules]  # cubes not handed over
        self._shape: dict[int, Contribution] = {}  # per metric, one with its seller if any
        for c in (c for plan in self._plans.values() for c in plan):
            if c.seller or c.metric_index not in self._shape:
                self._shape[c.metric_index] = c
        self._keys: list[list[dict[Any, SliceKey]]] = [  # [metric][slot]: raw -> slice key
            [{} for _ in range(self._shape[m].leaf_slot if m in self._shape else 0)]
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
        cubed = {m: c for m, c in self._shape.items() if c.cube}
        env.update(feeder_env(plan, self._open, self._admit, self._late,
                              {m: self._flood(c) for m, c in cubed.items() if c.leaf},
                              {m: self._new_window(m, c) for m, c in cubed.items()}),
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
        if slot >= len(self._keys[m]):  # the seller slot
            return _admit_seller(w.lookups[slot], raw)
        keys = self._keys[m][slot]
        key = keys.get(raw)
        if key is None:  # kept across hand-overs: a value's key is built once (bounded)
            if len(keys) >= KEYS_KEPT:
                keys.clear()
            key = keys[raw] = slot_key(self._shape[m], slot, raw)
        slices = w.slices
        if len(slices) < self._max_slices[m]:
            acc = slices.setdefault(key, [0.0, 0.0])  # one hash of the key, not two
        elif key in slices:
            acc = slices[key]
        else:  # a flood: into the dimension's `other`, not remembered for `raw` (every
            self.dropped_series[self.rules[m].metric] += 1  # update of it is counted)
            return slices.setdefault(tuple((d, OTHER) for d, _ in key), [0.0, 0.0])
        w.lookups[slot][raw] = acc
        return acc

    def _new_window(self, m: int, c: Contribution) -> Callable[[int], OpenWindow]:
        """Metric m's window at a start, its cube slots bound to the window's held cube."""
        held, slots, leaf, seller = self._held[m], c.slots, c.leaf_slot, c.seller_slot

        def new(start: int) -> OpenWindow:
            w = OpenWindow(slots)
            cube = held.get(start)
            if cube is None:
                cube = held[start] = WindowCube()
            if c.leaf:
                w.lookups[leaf] = cube.leaves
            if c.seller:
                w.lookups[seller] = cube.sellers
            return w

        return new

    @staticmethod
    def _flood(c: Contribution) -> Callable[[OpenWindow, Any], list[float]]:
        """A leaf beyond the window's cap (a flood of junk values): into the all-`other` leaf."""
        other, slot = (OTHER,) * len(c.leaf), c.leaf_slot

        def flood(w: OpenWindow, raw: Any) -> list[float]:
            return w.lookups[slot].setdefault(other, [0.0, 0.0])

        return flood

    def _late(self, topic: str, m: int) -> None:
        self.late[(topic, self.rules[m].metric)] += 1

    def take_open(self, flush: bool = False) -> list[Partial]:
        """Hands over (and forgets) what every open window gathered since the last call, and
        the cubes of the windows whose close point this source's watermark has passed (every
        cube held, with `flush`).

        A live source sends these deltas on and keeps nothing but the cubes not handed over
        yet: the owner of the metric merges them and decides when a window closes. Lateness
        is still judged here, by this source's watermark.
        """
        out: list[Partial] = []
        for m, windows in enumerate(self._open):
            cubes = self._due(m, flush)
            for start in sorted(windows.keys() | cubes.keys()):
                w = windows.get(start)
                out.append(Partial(m, start, {} if w is None else w.slices, cubes.get(start)))
            windows.clear()
        return out

    def _due(self, m: int, flush: bool) -> dict[int, WindowCube]:
        """Takes metric m's held cubes that are complete here (or all of them, `flush`)."""
        held = self._held[m]
        if not held:
            return {}
        mark = self.watermark_ms
        after = self._width[m] + self._lateness[m]
        due = [s for s in held if flush or (mark is not None and s + after <= mark)]
        return {s: held.pop(s) for s in due}


def _admit_seller(sellers: dict[Any, list[float]], raw: Any) -> list[float]:
    """A seller new in its window: into the window's Misra-Gries summary of `SELLERS_KEPT`."""
    if len(sellers) >= SELLERS_KEPT:
        heavy_hitters(sellers)
    acc = sellers[raw] = [0.0, 0.0]
    return acc
