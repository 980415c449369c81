"""The live worker's own code without Faust or a broker: sources -> reports -> owner, per batch.

    python benchmarks/live_path.py [--days 1] [--seed 11] [--batch 20,200,2000] [--repeat 3]

Every record of a simulated dump becomes one message of its topic's partition (murmur2, as the
producer places it); each batch of `--batch` messages goes through `SourcePool.ingest`, then
every report `SourcePool.reports` makes goes through the partials topic's wire format
(`encode`/`decode`) to `Owner.on_report`, which merges it and closes what is complete. What
Faust adds per message (delivery, acks, table writes, the producer) is left out, so the figure
is this project's CPU time alone, and steadier than benchmarks/live.py's on a shared machine.
Prints CPU seconds (this process's) and reports sent per batch size, median of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stream_guard.aggregate.merger import expected_sources  # noqa: E402
from stream_guard.aggregate.source import SourceStage  # noqa: E402
from stream_guard.config.rules import MetricRule, load_rules  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.engine import Engine  # noqa: E402
from stream_guard.ingest.codec import Codec  # noqa: E402
from stream_guard.ingest.files import iter_records  # noqa: E402
from stream_guard.ingest.kafka_batch import encode_value, record_partition  # noqa: E402
from stream_guard.runtime.owner import Owner  # noqa: E402
from stream_guard.runtime.reports import Report, decode, encode  # noqa: E402
from stream_guard.runtime.sources import SourcePool  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402
from stream_guard.stats import EngineStats  # noqa: E402

Message = tuple[str, int, int, bytes]  # topic, partition, offset, value
IDLE_MS = 10_000


def messages(dump: Path, partitions: dict[str, int]) -> list[Message]:
    """The dump's records as messages (records of no known topic left out)."""
    out: list[Message] = []
    for offset, (topic, key, value, _origin) in enumerate(iter_records(dump)):
        n = partitions.get(topic)
        if n is None:
            continue
        p = record_partition(key, n)
        out.append((topic, p, offset, encode_value(value)))
    return out


def run(rules: list[MetricRule], codec: Codec, partitions: dict[str, int],
        msgs: list[Message], batch: int) -> tuple[float, int]:
    """CPU seconds and reports sent for one pass of `msgs` in batches of `batch`."""
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    owner = Owner(Engine(rules), expected_sources(rules, partitions), IDLE_MS)
    for rule in rules:
        owner.adopt(rule.metric, None, None, 0)
    sent, started = 0, time.process_time()
    for first in range(0, len(msgs), batch):
        for topic, p, offset, value in msgs[first:first + batch]:
            pool.ingest(topic, p, offset, value, None)
        for report in pool.reports(first):
            wire = decode(encode(report))
            assert isinstance(wire, Report)
            owner.on_report(wire)
            sent += 1
    return time.process_time() - started, sent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--batch", default="20,200,2000", help="messages per batch (comma-separated)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work", type=Path, default=REPO / "out" / "bench-live-path")
    args = p.parse_args()
    sim = args.work / f"sim-{args.days}d-seed{args.seed}"  # simulated once, then reused
    dump = sim / "events.jsonl"
    if not dump.exists():
        write_simulation(sim, days=args.days, seed=args.seed)
    topics = load_topics(None)
    rules, codec = load_rules(REPO / "alert_rules", topics), Codec(topics)
    partitions = {name: spec.partitions for name, spec in topics.items()}
    msgs = messages(dump, partitions)
    table = Table("messages per batch", "reports", "CPU s (median)", "messages per CPU-s",
                  title=f"sources -> reports -> owner, {len(msgs):,} messages, one event each")
    for batch in (int(b) for b in args.batch.split(",")):
        runs = [run(rules, codec, partitions, msgs, batch) for _ in range(args.repeat)]
        cpu = statistics.median(c for c, _ in runs)
        table.add_row(f"{batch:,}", f"{runs[0][1]:,}", f"{cpu:.2f}", f"{len(msgs) / cpu:,.0f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
