"""One window's leaf cube and sellers, as a source hands them over once and the merger sums them.

A `WindowCube` holds, for one metric window, every leaf seen (the value of each cube dimension
at once, a raw tuple such as ``("EU", "toys", "gold")``) and the sellers behind the counted
events (a raw ``seller_id``), each with its accumulator ``[numerator, denominator]``, like a
slice's. It travels apart from the window's slices: a source gathers it across its batches and
hands it over once, when its own watermark passes the window's close point (after that, every
event of the window is late at that source: nothing is added later), so the cube crosses the
partials topic and the merger once per source and window, not with every batch.

Bounded by construction: a source window admits at most the metric's leaf cap (beyond, the
all-``other`` leaf takes the flood, aggregate/windows.py) and keeps a Misra-Gries summary of
`SELLERS_KEPT` sellers (`heavy_hitters`); the merged cube of a window is the union of its
sources' cubes.

`encode_cube` / `decode_cube` are its explicit wire and snapshot form (JSON-ready lists, no
pickle): each dimension's values once, then the leaves as value codes and two numbers.

>>> cube = WindowCube({("EU", "toys"): [2.0, 1.0], ("NA", "toys"): [1.0, 1.0]},
...                   {"s-1": [3.0, 0.0]})
>>> encode_cube(cube)
[[['EU', 'NA'], ['toys']], [0, 0, 2.0, 1.0, 1, 0, 1.0, 1.0], ['s-1', 3.0, 0.0]]
>>> decode_cube(encode_cube(cube)) == cube
True
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["LEAF_CAP", "OTHER", "SELLERS_KEPT", "WindowCube", "add_into", "decode_cube",
           "encode_cube", "heavy_hitters"]

OTHER = "other"
LEAF_CAP = 2000
"""Leaves one source window keeps at most (and at most the metric's `max_series`); beyond (a
flood of junk values), new leaves go to the all-`other` leaf. A 15-minute window of the
simulated week has at most ~400 leaves per orders partition (5 dimensions)."""
SELLERS_KEPT = 512
"""Sellers one source window counts at most (a Misra-Gries summary: `heavy_hitters`). It
spans the source's whole window (not one batch), so it is twice session 7's per-batch 256: a
test window of 300 sellers with ~2.4 complaints each stays exact (below, a summary's
undercounts of ordinary sellers made one look unusual)."""
K = TypeVar("K", bound=Hashable)


def add_into(acc: dict[K, list[float]], key: K, a: float, b: float) -> None:
    """Adds (a, b) to the slice `key` of `acc`, in place."""
    cur = acc.get(key)
    if cur is None:
        acc[key] = [a, b]
    else:
        cur[0] += a
        cur[1] += b


@dataclass(slots=True)
class WindowCube:
    """One window's leaves (raw values of the cube dimensions) and sellers, with accumulators."""

    leaves: dict[tuple[str, ...], list[float]] = field(default_factory=dict)
    sellers: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.leaves) + len(self.sellers)

    def add(self, other: WindowCube) -> None:
        """Adds another source's cube of the same window, in place (`other` is not kept)."""
        _add_all(self.leaves, other.leaves)
        _add_all(self.sellers, other.sellers)


def _add_all(acc: dict[K, list[float]], deltas: dict[K, list[float]]) -> None:
    """`add_into` for every entry of `deltas`, inlined: a window's cube is thousands."""
    if not acc:
        acc.update({key: [a, b] for key, (a, b) in deltas.items()})
        return
    get = acc.get
    for key, (a, b) in deltas.items():
        cur = get(key)
        if cur is None:
            acc[key] = [a, b]
        else:
            cur[0] += a
            cur[1] += b


def heavy_hitters(counts: dict[Any, list[float]]) -> int:
    """Misra-Gries, batched: every counter of `counts` (raw seller -> accumulator) drops by
    the median count, and those left at zero go; what was taken goes to the `OTHER` entry, so
    the window's seller counts still add up to its events. A seller with more than
    2/`SELLERS_KEPT` of the window's updates is never dropped, and the summaries merge by
    addition (Agarwal et al. 2012, "Mergeable summaries"). Runs once per `SELLERS_KEPT` / 2 new
    sellers: amortised O(1) per event. Returns how many sellers went.

    >>> counts = {"a": [5.0, 0.0], "b": [1.0, 0.0], "c": [2.0, 0.0]}
    >>> heavy_hitters(counts), counts
    (2, {'a': [3.0, 0.0], 'other': [5.0, 0.0]})
    """
    other = counts.setdefault(OTHER, [0.0, 0.0])
    ranked = sorted(acc[0] for acc in counts.values() if acc is not other)
    if not ranked:
        return 0
    cut = ranked[len(ranked) // 2]
    gone = 0
    for raw, acc in list(counts.items()):
        if acc is other:
            continue
        taken = min(acc[0], cut)
        acc[0] -= taken
        other[0] += taken
        if acc[0] <= 0:
            other[1] += acc[1]
            del counts[raw]
            gone += 1
    return gone


def encode_cube(cube: WindowCube) -> list[Any]:
    """``[values per dimension, flat leaves (codes..., a, b)*, flat sellers (name, a, b)*]``."""
    width = len(next(iter(cube.leaves), ()))
    codes: list[dict[str, int]] = [{} for _ in range(width)]
    flat: list[Any] = []
    for leaf, (a, b) in cube.leaves.items():
        flat += [c.setdefault(v, len(c)) for c, v in zip(codes, leaf, strict=True)]
        flat += (a, b)
    sellers: list[Any] = []
    for seller, (a, b) in cube.sellers.items():
        sellers += (seller, a, b)
    return [[list(c) for c in codes], flat, sellers]


def decode_cube(obj: Any) -> WindowCube:
    """The inverse of `encode_cube`; ValueError (or TypeError) if `obj` is not one."""
    values, flat, sellers = obj
    width = len(values)
    stride = width + 2
    if (flat and not width) or len(flat) % max(stride, 1) or len(sellers) % 3:
        raise ValueError("not an encoded cube: lengths do not match")
    names = [[str(v) for v in vals] for vals in values]
    leaves = {
        tuple(names[j][int(flat[i + j])] for j in range(width)):
            [float(flat[i + width]), float(flat[i + width + 1])]
        for i in range(0, len(flat), stride)
    }
    return WindowCube(leaves, {str(sellers[i]): [float(sellers[i + 1]), float(sellers[i + 2])]
                               for i in range(0, len(sellers), 3)})
