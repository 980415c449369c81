"""Shared by the parity tests (tests/unit/runtime, tests/integration): the input and how alerts
are compared. Parity is exact: no event is left out.

Alerts are compared per owner (`per_owner`): the metrics of one partials partition have one
owner, whose alerts are in one order in replay and live; owners on different workers publish
side by side, in no fixed order between them. That order holds for alerts read in the process
that made them (tests/unit), or from an alerts topic of one partition.

Read back from an alerts topic of several partitions (topics/alerts.yaml), one owner's records
are spread by fingerprint over the partitions and come back interleaved in no fixed order; only
each partition's own order holds, and an episode's records all share its fingerprint, hence one
partition. Those are compared per owner and per episode (`per_episode`): the same episodes,
each with the same records in the same order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from stream_guard.backtest.replay import Replayer, run_replayer
from stream_guard.ingest.arrival import arrival_times
from stream_guard.ingest.files import DumpRecord
from stream_guard.ingest.kafka_batch import event_time
from stream_guard.ownership import home
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.types import AlertRecord


def parity_records() -> list[dict[str, Any]]:
    """Three simulated days (their late, invalid and out-of-order records included)."""
    return list(Simulation(SimulationConfig(days=3, seed=3, scale=0.6)).records())


def raw_value(rec: dict[str, Any]) -> bytes:
    """The Kafka record value (the dump's `value_raw` is a value that is not even JSON)."""
    if "value_raw" in rec:
        return str(rec["value_raw"]).encode()
    return orjson.dumps(rec["value"])


def dump_records(records: list[dict[str, Any]]) -> list[DumpRecord]:
    """The records as replay reads them from a dump file."""
    return [DumpRecord(r["topic"], r.get("key"), raw_value(r) if "value_raw" in r else r["value"],
                       f"dump:{i}") for i, r in enumerate(records)]


def arrivals(records: list[dict[str, Any]]) -> list[int | None]:
    """The arrival time estimated for each record: what `produce` stamps live."""
    return [a for _, a in arrival_times(records, lambda r: event_time(r.get("value")))]


def comparable(alert: AlertRecord | Mapping[str, Any]) -> tuple[Any, ...]:
    """What must match between a live alert (read from the topic) and replay's (the model): as
    JSON values, so the key can itself be dumped or printed."""
    a = AlertRecord.parse(alert).to_dict()
    return (a["fingerprint"], a["status"], a["window_start"], a["window_end"], a["severity"],
            round(a["value"], 6), a["hints"])


def per_owner(
    alerts: Iterable[AlertRecord | Mapping[str, Any]], partitions: int
) -> dict[int, list[tuple[Any, ...]]]:
    """Partials partition -> its owner's alerts (`comparable`), in their order."""
    owners: dict[int, list[tuple[Any, ...]]] = {}
    for alert in alerts:
        owners.setdefault(home(str(alert["metric"]), partitions), []).append(comparable(alert))
    return dict(sorted(owners.items()))


def per_episode(
    alerts: Iterable[AlertRecord | Mapping[str, Any]], partitions: int
) -> dict[int, dict[str, list[tuple[Any, ...]]]]:
    """Partials partition -> episode id -> the episode's alerts (`comparable`), in their order;
    the episodes of one owner in no order (equal dicts: the same episodes, each the same).
    """
    owners: dict[int, dict[str, list[tuple[Any, ...]]]] = {}
    for alert in alerts:
        episodes = owners.setdefault(home(str(alert["metric"]), partitions), {})
        episodes.setdefault(str(alert["episode_id"]), []).append(comparable(alert))
    return dict(sorted(owners.items()))


def replay_alerts(replayer: Replayer, records: list[dict[str, Any]]) -> list[AlertRecord]:
    """What `stream-guard replay` gives for `records`."""
    alerts: list[AlertRecord] = []
    run_replayer(replayer, dump_records(records), alerts.append)
    return alerts
