"""How often the owners save (runtime/checkpoint.py `HOLD`): changelog bytes against the work a
restart does again, at scale, without a broker.

    python benchmarks/scale_saves.py                          # 2 days, holds 1 4 16 64
    python benchmarks/scale_saves.py --days 1 --scale 0.3 --seed 12 --holds 1,8

The backlog and rules of benchmarks/scale.py (100 rules, 20 by seller) go through the live
code: source stages per event partition (batches of `--batch` records, reports stamped with
the batch's arrival time, a tick per partials partition every `TICK_EVERY` batches), then one
`Checkpoint` over all partials partitions with a dict for the table, once per `hold`:

- **written**: the table values written (what the changelog receives), their count and bytes,
  and the latest value per key (what a compacted changelog keeps: two slots per snapshot);
- **CPU** of the owners' steps, saves included (`time.process_time`);
- **replay after a crash**: for a crash after every message, the owners' CPU spent on the
  messages after each partition's last save (what the restarted worker does again, from the
  log), mean and max over the crash points, and the messages re-read;
- **restore**: the CPU to decode the table's saved state (every metric adopted).

The owners' CPU per message is the original run's, so a replay is costed as it ran first
(its saves included). Deterministic in everything but the CPU figures.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import scale  # noqa: E402  (benchmarks/scale.py: the cached rules and backlog)

from stream_guard.aggregate.source import SourceStage  # noqa: E402
from stream_guard.config.calendar import load_calendar  # noqa: E402
from stream_guard.config.rules import MetricRule, load_rules  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.engine import Engine  # noqa: E402
from stream_guard.ingest.arrival import arrival_times  # noqa: E402
from stream_guard.ingest.codec import Codec  # noqa: E402
from stream_guard.ingest.kafka_batch import event_time, record_partition  # noqa: E402
from stream_guard.ownership import home, owner_groups  # noqa: E402
from stream_guard.runtime.checkpoint import Checkpoint  # noqa: E402
from stream_guard.runtime.owner import Owner, Owners  # noqa: E402
from stream_guard.runtime.reports import Report, Tick  # noqa: E402
from stream_guard.runtime.sources import SourcePool, expected_sources  # noqa: E402
from stream_guard.stats import EngineStats  # noqa: E402

TICK_EVERY = 5
"""Batches between two rounds of ticks (one per partials partition)."""
Message = tuple[int, int, Report | Tick]
"""(partials partition, offset, message)."""


@dataclass
class Inputs:
    rules: list[MetricRule]
    sources: dict[str, frozenset[str]]
    partitions: int
    calendar: Any
    messages: list[Message]


def inputs(rules_dir: Path, events: Path, batch: int) -> Inputs:
    """The backlog as the partials messages its sources send, each on its home partition."""
    topics = load_topics()
    rules = load_rules(rules_dir, topics)
    codec = Codec(topics)
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    counts = {name: spec.partitions for name, spec in topics.items()}
    n = counts["partials"]
    ticks = [group[0].metric for group in owner_groups(rules, n).values()]
    records = [orjson.loads(line) for line in events.read_bytes().splitlines()]
    arrival = [a for _, a in arrival_times(records, lambda r: event_time(r.get("value")))]
    out: list[Message] = []
    offsets = [0] * n
    for first in range(0, len(records), batch):
        for i, rec in enumerate(records[first:first + batch], first):
            key, parts = rec.get("key"), counts[rec["topic"]]
            p = record_partition(key, parts)
            pool.ingest(rec["topic"], p, i, _raw(rec), arrival[i])
        now = max((a for a in arrival[first:first + batch] if a is not None), default=0)
        sent: list[Report | Tick] = [*pool.reports(now)]
        if (first // batch) % TICK_EVERY == 0:
            sent += [Tick(metric, now) for metric in ticks]
        for msg in sent:
            p = home(msg.metric, n)
            out.append((p, offsets[p], msg))
            offsets[p] += 1
    return Inputs(rules, expected_sources(rules, counts), n,
                  load_calendar(rules_dir / "calendar.yaml"), out)


def _raw(rec: dict[str, Any]) -> bytes:
    """The Kafka record value (a dump's `value_raw` is one that is not even JSON)."""
    return str(rec["value_raw"]).encode() if "value_raw" in rec else orjson.dumps(rec["value"])


class Table(dict[str, str]):
    """The owner-state table, counting what its changelog receives."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = self.bytes = 0
        self.kinds: Counter[str] = Counter()  # bytes per kind: model, windows, position

    def __setitem__(self, key: str, value: str) -> None:
        self.writes += 1
        self.bytes += len(key) + len(value)
        self.kinds[key.split("/")[0 if key.startswith("position/") else 1]] += len(value)
        super().__setitem__(key, value)


@dataclass
class Replay:
    """Per partition: the owners' CPU since its last save and messages since (a restart's
    work again), and over every crash point the mean and max of their sums."""

    cpu: dict[int, float] = field(default_factory=dict)
    messages: dict[int, int] = field(default_factory=dict)
    points: list[tuple[float, int]] = field(default_factory=list)

    def took(self, partition: int, cpu: float, saved: bool) -> None:
        if saved:
            self.cpu[partition], self.messages[partition] = 0.0, 0
        else:
            self.cpu[partition] = self.cpu.get(partition, 0.0) + cpu
            self.messages[partition] = self.messages.get(partition, 0) + 1
        self.points.append((sum(self.cpu.values()), sum(self.messages.values())))


def run(inp: Inputs, hold: int, save_every: int) -> dict[str, Any]:
    table = Table()
    owners = Owners(inp.rules, inp.partitions, lambda group, stats: Owner(
        Engine(group, inp.calendar, stats=stats), inp.sources, 5_000))

    async def publish(_records: list[Any]) -> None:
        return None

    checkpoint = Checkpoint(owners, table, publish, save_every=save_every, hold=hold)
    replay = Replay()
    alerts = closes = 0

    async def deliver() -> None:
        nonlocal alerts, closes
        for p, offset, msg in inp.messages:
            before, cpu0 = table.get(f"position/partials/{p}"), time.process_time()
            closed = await checkpoint.on_message((p, offset), msg, lambda: None)
            replay.took(p, time.process_time() - cpu0,
                        table.get(f"position/partials/{p}") != before)
            alerts, closes = alerts + len(closed.alerts), closes + len(closed.closes)

    cpu0 = time.process_time()
    asyncio.run(deliver())
    cpu = time.process_time() - cpu0
    return {"hold": hold, "save_every": save_every, "owner_cpu_s": cpu, "alerts": alerts,
            "windows_closed": closes, "writes": table.writes, "written_bytes": table.bytes,
            "written_by_kind": dict(table.kinds),
            "latest_bytes": sum(len(k) + len(v) for k, v in table.items()),
            "replay_cpu_s_mean": statistics.fmean(c for c, _ in replay.points),
            "replay_cpu_s_max": max(c for c, _ in replay.points),
            "replay_messages_mean": statistics.fmean(m for _, m in replay.points),
            "replay_messages_max": max(m for _, m in replay.points),
            "restore_cpu_s": restore(inp, table)}


def restore(inp: Inputs, table: Table) -> float:
    """CPU to adopt every metric from `table` (what a restarted worker decodes)."""
    owners = Owners(inp.rules, inp.partitions, lambda group, stats: Owner(
        Engine(group, inp.calendar, stats=stats), inp.sources, 5_000))

    async def publish(_records: list[Any]) -> None:
        return None

    checkpoint = Checkpoint(owners, table, publish)
    cpu0 = time.process_time()
    for p in owners.groups:
        owner = owners.of(p)
        assert owner is not None
        for metric in owners.metrics(p):
            checkpoint.adopt(owner, metric, p, 0)
    return time.process_time() - cpu0


def main() -> int:
    ap = scale.backlog_args(__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--holds", default="1,4,16,64")
    ap.add_argument("--save-every", type=int, default=500)
    args = ap.parse_args()
    rules, events = scale.prepare(args.work, args.days, args.scale, args.seed, args.metrics)
    cpu0 = time.process_time()
    inp = inputs(rules, events, args.batch)
    print(f"{len(inp.messages):,} partials messages on {inp.partitions} partitions "
          f"({time.process_time() - cpu0:.0f} CPU-s of sources)", flush=True)
    results = []
    for hold in (int(h) for h in args.holds.split(",")):
        result = run(inp, hold, args.save_every)
        results.append(result)
        print(orjson.dumps(result).decode(), flush=True)
    out = args.work / f"saves-{args.days}d-x{args.scale:g}-seed{args.seed}-{int(time.time())}.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
