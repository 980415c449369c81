"""The owner's saved state, as versioned bytes: what the `owner-state` table holds per metric.

Two snapshots per metric, written at different rates (runtime/checkpoint.py owns the order):

- **windows** -- the window merger's state (aggregate/merger.py: open windows, what each source
  said, offsets merged). Plain data, so it is JSON: ``b"SGW" + version + JSON``, readable by
  any tool, changed with every report. Version `WINDOWS_VERSION`.
- **model** -- the engine's state for the metric (point builder, episode tracker, detectors)
  plus the state shared across metrics (interventions, co-moving windows) and the window it
  has closed up to. Detectors are arbitrary River-contract objects, which River itself
  persists by pickling, so the model is ``b"SGM" + version + pickle`` of one named, frozen type
  -- never an anonymous tuple. Version `MODEL_VERSION`: 2 since the episode tracker keeps a set
  of open episodes per metric (concurrent incidents) instead of one; 3 since the engine keeps
  the recent windows of the slices it alerts on (`MetricState.history`, alert/record.py); 4
  since it keeps the leaf cube's forecasts and the seller baseline (`MetricState.rca`,
  explain/rootcause.py).

A blob of another version (or none at all: state written before snapshots were versioned) is
refused with a `SnapshotError` that says what was found and what this worker reads: state is
never half-understood.

>>> from stream_guard.aggregate.merger import MergerState, SourceMark
>>> state = MergerState(open={0: {(("region", "EU"),): [2.0, 1.0]}}, closed_until=-900,
...                     sources={"orders/0": SourceMark(60_000)}, covered={"orders/0": 7})
>>> back = decode_windows(encode_windows(state))
>>> back.open == state.open, back.sources == state.sources, back.cubeless
(True, True, [0])
>>> decode_windows(b"SGW9{}")
Traceback (most recent call last):
...
stream_guard.runtime.snapshot.SnapshotError: windows snapshot version 9: this worker reads 1
>>> decode_model(b"SGM1...")
Traceback (most recent call last):
...
stream_guard.runtime.snapshot.SnapshotError: model snapshot version 1: this worker reads 4
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

from stream_guard.aggregate.merger import MergerState, SourceMark
from stream_guard.aggregate.plan import is_cube_key
from stream_guard.engine import MetricState, SharedState
from stream_guard.errors import StreamGuardError

__all__ = ["MODEL_VERSION", "WINDOWS_VERSION", "ModelSnapshot", "SnapshotError",
           "decode_model", "decode_windows", "encode_model", "encode_windows"]

WINDOWS_VERSION = 1
MODEL_VERSION = 4  # 1: one episode per metric (EpisodeTracker.current); 2: a set of them;
# 3: MetricState.history (the recent windows behind a record's numbers and chart);
# 4: MetricState.rca (the leaf cube's forecasts, seller baseline, episodes' root causes)
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
    (thousands with the leaf cube) before they are re-encoded anyway."""
    plain: dict[str, Any] = {f.name: getattr(state, f.name) for f in fields(state)}
    plain["sources"] = {name: asdict(mark) for name, mark in state.sources.items()}
    plain["open"] = [[start, [(key, a, b) for key, (a, b) in acc.items()  # orjson: tuples
                              if not is_cube_key(key)]]  # as arrays; no leaf or seller keys
                     for start, acc in state.open.items()]
    plain["cubeless"] = sorted({*state.cubeless, *state.open})  # restored without their cube
    return _WINDOWS + str(WINDOWS_VERSION).encode() + orjson.dumps(plain)


def decode_windows(blob: bytes) -> MergerState:
    plain: dict[str, Any] = orjson.loads(_body(blob, _WINDOWS, "windows", WINDOWS_VERSION))
    plain["open"] = {int(start): {tuple((d, v) for d, v in key): [a, b] for key, a, b in acc}
                     for start, acc in plain["open"]}
    plain["sources"] = {name: SourceMark(**mark) for name, mark in plain["sources"].items()}
    return MergerState(**plain)


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
