"""Shared by the parity tests (tests/unit/runtime, tests/integration): the input and how alerts
are compared."""

from __future__ import annotations

from typing import Any

import orjson

from stream_guard.backtest.replay import ADVANCE_EVERY
from stream_guard.engine import Engine
from stream_guard.errors import InvalidEvent
from stream_guard.ingest.codec import Codec
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.types import AlertRecord

AMBIGUOUS_DELAY_MS = 20_000  # the simulator's late events are 30 s to 4 min late


def parity_records(codec: Codec) -> list[dict[str, Any]]:
    """Three simulated days, less the events that arrive late by about the allowed lateness.

    Live, each source judges lateness by its own partition's watermark, replay by the largest
    event time of the whole input: an event delayed by the lateness give or take a partition's
    inter-arrival time (well under a second here) may be on time in one and late in the other,
    as in any engine with per-partition watermarks. Parity is exact for every other event."""
    sim = Simulation(SimulationConfig(days=3, seed=3, scale=0.6))
    kept, max_ts = [], 0
    for rec in sim.records():
        try:
            ts = codec.validate(rec["topic"], rec["value"])
        except (InvalidEvent, KeyError):
            kept.append(rec)
            continue
        max_ts = max(max_ts, ts)
        if max_ts - ts <= AMBIGUOUS_DELAY_MS:
            kept.append(rec)
    return kept


def raw_value(rec: dict[str, Any]) -> bytes:
    """The Kafka record value (the dump's `value_raw` is a value that is not even JSON)."""
    if "value_raw" in rec:
        return str(rec["value_raw"]).encode()
    return orjson.dumps(rec["value"])


def comparable(a: AlertRecord) -> tuple[Any, ...]:
    return (a["fingerprint"], a["status"], a["window_start"], a["window_end"], a["severity"],
            round(a["value"], 6), a["hints"])


def replay_alerts(engine: Engine, records: list[dict[str, Any]]) -> list[AlertRecord]:
    """What `stream-guard replay` gives for `records` (its advance cadence included)."""
    alerts: list[AlertRecord] = []
    for i, rec in enumerate(records):
        engine.ingest(rec["topic"], raw_value(rec), str(i))
        if i % ADVANCE_EVERY == 0:
            alerts += engine.advance()
    return alerts + engine.advance(final=True)
