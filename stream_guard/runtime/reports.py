"""What a source partition tells the owner of a metric: the partials topic's messages.

A source (one partition of an event topic) pre-aggregates events into window deltas and, after
each batch, sends the owner of every metric its topic feeds one `Report`: the deltas of the
windows it touched, its watermark (the largest event time it has seen) and the raw governance
records it consumed; a report carrying governance actions goes to every owner, so that every
owner can name interventions (validated ``[ts, fields]`` pairs; see `sources._needs`). A
`Report` without deltas still matters: it moves the watermark and shows the source is alive.
Ticks carry no data: they bring wall-clock time into the owner's ordered stream, because Faust
tables can only be written while processing a message of the table's partition, and the extent
of every partition the sending worker consumes (`status`: source -> [end offset, first offset]): the
owner calls a source caught up once it has merged its reports up to that end (or the partition
is empty), which is what lets the window merger call it idle -- judged from what the owner has
merged, never from what a consumer has merely fetched. Both carry the sender's wall clock
(`sent_ms`): the owner judges idleness by these, in stream order, so an owner that lags behind
its input does not mistake sources for idle.

The wire format is JSON (orjson): the partials topic is internal but must stay readable with any
Kafka tool. A slice key travels as its list of ``[dimension, value]`` pairs; a window's cube,
which a source sends once (aggregate/cube.py), in its compact form (`encode_cube`).

>>> r = Report("gmv", "orders/1", 60_000, [(0, {(("region", "EU"),): [2.0, 1.0]})], [], 7, 40, 42)
>>> decode(encode(r)) == r
True
>>> decode(encode_tick("gmv", 9, {"orders/0": (120, 0)}))
Tick(metric='gmv', sent_ms=9, status={'orders/0': (120, 0)})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from stream_guard.aggregate.cube import WindowCube, decode_cube, encode_cube
from stream_guard.aggregate.windows import Accumulators
from stream_guard.types import SliceKey

__all__ = ["NO_WATERMARK", "Report", "Tick", "decode", "encode", "encode_tick"]

NO_WATERMARK = -1
"""`Report.watermark_ms` of a source that has seen no valid event yet (its offsets count)."""


@dataclass(frozen=True, slots=True)
class Report:
    metric: str
    source: str  # "topic/partition"
    watermark_ms: int  # the largest event time this source has seen
    windows: list[tuple[int, Accumulators]]  # (window start, deltas since the last report)
    interventions: list[Any]  # validated governance actions, [ts_ms, fields]
    sent_ms: int  # the source's wall clock when sending: window-close-to-alert latency
    # The source partition's offsets this report covers, [first, next): the owner drops a
    # report it has already merged (a source re-reading after a crash), see runtime/owner.py.
    first_offset: int
    next_offset: int
    cubes: list[tuple[int, WindowCube]] = field(default_factory=list)  # handed over once


@dataclass(frozen=True, slots=True)
class Tick:
    metric: str
    sent_ms: int
    status: dict[str, tuple[int, int]] = field(default_factory=dict)  # source -> (end, first)


def encode(r: Report) -> bytes:
    return orjson.dumps({
        "metric": r.metric, "source": r.source, "watermark_ms": r.watermark_ms,
        "windows": [
            [start, [(key, acc[0], acc[1]) for key, acc in slices.items()]]  # tuples: arrays
            for start, slices in r.windows
        ],
        "interventions": r.interventions, "sent_ms": r.sent_ms,
        "offsets": [r.first_offset, r.next_offset],
        **({"cubes": [[start, encode_cube(c)] for start, c in r.cubes]} if r.cubes else {}),
    })


def encode_tick(
    metric: str, sent_ms: int, status: dict[str, tuple[int, int]] | None = None
) -> bytes:
    return orjson.dumps({"metric": metric, "tick": True, "sent_ms": sent_ms,
                         "status": status or {}})


def decode(raw: bytes) -> Report | Tick:
    obj = orjson.loads(raw)
    if obj.get("tick"):
        return Tick(obj["metric"], int(obj["sent_ms"]),
                    {str(k): (int(v[0]), int(v[1])) for k, v in obj.get("status", {}).items()})
    windows = [
        (int(start), {_key(key): [float(a), float(b)] for key, a, b in slices})
        for start, slices in obj["windows"]
    ]
    first, next_ = obj["offsets"]
    cubes = [(int(start), decode_cube(c)) for start, c in obj.get("cubes", [])]
    return Report(obj["metric"], obj["source"], int(obj["watermark_ms"]), windows,
                  list(obj["interventions"]), int(obj["sent_ms"]), int(first), int(next_), cubes)


def _key(pairs: list[list[str]]) -> SliceKey:
    return tuple((str(d), str(v)) for d, v in pairs)
