"""The owner's saved state, as versioned bytes: what the `owner-state` table holds per metric.

Two snapshots per metric, written at different rates (runtime/checkpoint.py owns the order):

- **windows** -- the window merger's state (aggregate/merger.py: open windows, what each source
  said, offsets merged, the cubes handed over for open windows and which are still due). Plain
  data, so it is JSON: ``b"SGW" + version + JSON``, readable by any tool, changed with every
  report. Version `WINDOWS_VERSION`: 2 since open windows keep their cubes, in their compact
  form (aggregate/cube.py `encode_cube`: each dimension's values once, then value codes and
  numbers), oldest window first up to `CUBE_BUDGET` bytes; a window beyond (a backlog of
  held-back windows) is restored without its cube (`cubeless`), so the cubes take at most
  3 MB of a snapshot (4 MB in the table's base64), whatever the backlog.
- **model** -- the engine's state for the metric (point builder, episode tracker, detectors)
  plus the state shared across metrics (interventions) and the window it
  has closed up to. Detectors are arbitrary River-contract objects, which River itself
  persists by pickling, so the model is ``b"SGM" + version + pickle`` of one named, frozen type
  -- never an anonymous tuple. Version `MODEL_VERSION`: 2 since the episode tracker keeps a set
  of open episodes per metric (concurrent incidents) instead of one; 3 since the engine keeps
  the recent windows of the slices it alerts on (`MetricState.history`, alert/record.py); 4
  since it keeps the leaf cube's forecasts and the seller baseline (`MetricState.rca`,
  explain/rootcause.py); 5 since co-moving episodes are the notifier's (no co-moving windows
  in the shared state).

A blob of another version (or none at all: state written before snapshots were versioned) is
refused with a `SnapshotError` that says what was found and what this worker reads: state is
never half-understood.

>>> from stream_guard.aggregate.merger import MergerState, SourceMark
>>> state = MergerState(open={0: {(("region", "EU"),): [2.0, 1.0]}}, closed_until=-900,
...                     sources={"orders/0": SourceMark(60_000)}, covered={"orders/0": 7})
>>> state.cubes[0] = WindowCube({("EU", "toys"): [2.0, 1.0]}, {"s-1": [1.0, 0.0]})
>>> state.due[0] = {"orders/1"}
>>> back = decode_windows(encode_windows(state))
>>> back.open == state.open, back.sources == state.sources, back.cubes == state.cubes
(True, True, True)
>>> back.due, back.cubeless
({0: {'orders/1'}}, [])
>>> decode_windows(b"SGW1{}")
Traceback (most recent call last):
...
stream_guard.runtime.snapshot.SnapshotError: windows snapshot version 1: this worker reads 2
>>> decode_model(b"SGM1...")
Traceback (most recent call last):
...
stream_guard.runtime.snapshot.SnapshotError: model snapshot version 1: this worker reads 5
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from stream_guard.aggregate.cube import WindowCube, decode_cube, encode_cube
from stream_guard.aggregate.merger import MergerState, SourceMark
from stream_guard.engine import MetricState, SharedState
from stream_guard.errors import StreamGuardError

__all__ = ["CUBE_BUDGET", "MODEL_VERSION", "WINDOWS_VERSION", "ModelSnapshot", "SnapshotError",
           "decode_model", "decode_windows", "encode_model", "encode_windows"]

WINDOWS_VERSION = 2  # 1: no cubes (open windows restored without them); 2: cubes saved
CUBE_BUDGET = 3_000_000
"""Bytes of encoded cubes one windows snapshot saves at most (JSON; 4 MB in the table's
base64, half a Kafka message). See docs/rca.md for the sizes measured."""
MODEL_VERSION = 5  # 1: one episode per metric (EpisodeTracker.current); 2: a set of them;
# 3: MetricState.history (the recent windows behind a record's numbers and chart);
# 4: MetricState.rca (the leaf cube's forecasts, seller baseline, episodes' root causes);
# 5: SharedState without co-moving windows (the notifier links co-moving episodes)
_WINDOWS, _MODEL = b"SGW", b"SGM"


class SnapshotError(StreamGuardError):
    """A saved state this worker cannot read (another version, or not a snapshot at all)."""


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    metric: MetricState
    shared: SharedState  # as it was when this snapshot was taken: the newest one wins
    closed_until: int | None  # the window the model has closed up to
    seq: int  # the owner's snapshot counter: which snapshot's shared state is the newest


def encode_windows(state: MergerState) -> bytes:
    """Field by field, not `asdict`: that deep-copies every slice key of the open windows
    before they are re-encoded anyway."""
    plain: dict[str, Any] = {f.name: getattr(state, f.name) for f in fields(state)}
    plain["sources"] = {name: asdict(mark) for name, mark in state.sources.items()}
    plain["open"] = [[start, [(key, a, b) for key, (a, b) in acc.items()]]  # orjson: tuples
                     for start, acc in state.open.items()]  # as arrays
    saved, over = _within_budget(state.cubes)
    plain["cubes"] = [[start, orjson.Fragment(blob)] for start, blob in saved]
    plain["due"] = [[start, sorted(sources)] for start, sources in state.due.items()]
    plain["cubeless"] = sorted({*state.cubeless, *over})  # restored without their cube
    return _WINDOWS + str(WINDOWS_VERSION).encode() + orjson.dumps(plain)


def _within_budget(cubes: dict[int, WindowCube]) -> tuple[list[tuple[int, bytes]], list[int]]:
    """The cubes saved (encoded), oldest window first, up to `CUBE_BUDGET` bytes; the starts
    of the windows left out."""
    saved: list[tuple[int, bytes]] = []
    over: list[int] = []
    used = 0
    for start in sorted(cubes):
        blob = orjson.dumps(encode_cube(cubes[start]))
        used += len(blob)
        if used <= CUBE_BUDGET and not over:
            saved.append((start, blob))
        else:
            over.append(start)
    return saved, over


def decode_windows(blob: bytes) -> MergerState:
    plain: dict[str, Any] = orjson.loads(_body(blob, _WINDOWS, "windows", WINDOWS_VERSION))
    try:
        plain["open"] = {int(start): {tuple((d, v) for d, v in key): [a, b]
                                      for key, a, b in acc} for start, acc in plain["open"]}
        plain["sources"] = {name: SourceMark(**mark) for name, mark in plain["sources"].items()}
        plain["cubes"] = {int(start): decode_cube(c) for start, c in plain["cubes"]}
        plain["due"] = {int(start): set(map(str, sources)) for start, sources in plain["due"]}
        return MergerState(**plain)
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(f"windows snapshot version {WINDOWS_VERSION} does not decode: "
                            f"{err!r}") from err


def encode_model(snapshot: ModelSnapshot) -> bytes:
    return _MODEL + str(MODEL_VERSION).encode() + pickle.dumps(snapshot, pickle.HIGHEST_PROTOCOL)


def decode_model(blob: bytes) -> ModelSnapshot:
    snapshot = pickle.loads(_body(blob, _MODEL, "model", MODEL_VERSION))
    if not isinstance(snapshot, ModelSnapshot):
        raise SnapshotError(f"model snapshot holds a {type(snapshot).__name__}")
    return snapshot


def _body(blob: bytes, magic: bytes, kind: str, expected: int) -> bytes:
    if not blob.startswith(magic):
        raise SnapshotError(f"not a {kind} snapshot (state written before snapshots were "
                            f"versioned?): starts with {blob[:8]!r}")
    version = blob[len(magic):len(magic) + 1]
    if version != str(expected).encode():
        raise SnapshotError(f"{kind} snapshot version {version.decode(errors='replace')}: "
                            f"this worker reads {expected}")
    return blob[len(magic) + 1:]
