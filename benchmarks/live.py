"""Live throughput of one `stream-guard worker` and its window-close-to-alert latency.

    python benchmarks/live.py                 # 1 simulated day, single-event and batched: ~2 min
    python benchmarks/live.py --days 2 --batch 100

For each message format (one event per Kafka message; `--batch` events per message, a JSON array)
the dump is produced *first* into its own topics, then one worker (the real `stream-guard worker`
in a child process, memory store) drains it; the rate is measured from the worker's /metrics
(`stream_guard_events_total` + invalid), from the first event counted to the last, so the group
join is not counted. The latency is the worker's `stream_guard_alert_latency_seconds` histogram:
wall time from the moment a source sent the report that let a window close to the owner's alert
records being on the alerts topic (p50/p99 interpolated within buckets).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from stream_guard.broker import EmbeddedBroker  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.ingest.files import iter_dump  # noqa: E402
from stream_guard.ingest.kafka_produce import produce_dump  # noqa: E402
from stream_guard.ingest.kafka_topics import create_topics  # noqa: E402
from stream_guard.runtime.local import LocalWorker  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402

console = Console()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _consumed(text: str) -> float:
    return sum(v for (name, _), v in _samples(text).items()
               if name in ("stream_guard_events_total", "stream_guard_events_invalid_total"))


def _quantile(text: str, q: float) -> float | None:
    buckets: dict[float, float] = {}
    for (name, labels), v in _samples(text).items():
        if name == "stream_guard_alert_latency_seconds_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    if not buckets or buckets[max(buckets)] == 0:
        return None
    total, prev_le, prev_n = buckets[float("inf")], 0.0, 0.0
    for le in sorted(buckets):
        n = buckets[le]
        if n >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((q * total - prev_n) / max(n - prev_n, 1e-9))
        prev_le, prev_n = le, n
    return None


def run(bootstrap: str, dump: Path, batch: int, expected: int, work: Path) -> dict[str, float]:
    prefix = f"live-{batch}-{uuid.uuid4().hex[:6]}-"
    create_topics(bootstrap, load_topics().values(), prefix=prefix)
    with console.status(f"producing {expected:,} events, {batch} per message"):
        produce_dump(bootstrap, iter_dump(dump), prefix=prefix, batch=batch)
    env = {"STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefix,
           "STREAM_GUARD_APP_ID": prefix.rstrip("-"),
           "STREAM_GUARD_RULES": str(REPO / "alert_rules"),
           "STREAM_GUARD_IDLE_AFTER": "5s", "STREAM_GUARD_SESSION_TIMEOUT": "6s",
           "STREAM_GUARD_DATA_DIR": str(work / prefix), "STREAM_GUARD_LOG_LEVEL": "warning"}
    with LocalWorker(env, work / f"{prefix}worker.log") as worker:
        first_t = first_n = None
        last_n, last_t = 0.0, time.monotonic()
        with console.status("draining") as status:
            while time.monotonic() - last_t < 10:
                n = _consumed(worker.metrics() or "")
                now = time.monotonic()
                if n and first_t is None:
                    first_t, first_n = now, n
                if n != last_n:
                    last_n, last_t = n, now
                status.update(f"draining: {int(n):,}/{expected:,}")
                if n >= expected:
                    break
                time.sleep(0.05)
        end_t = last_t
        time.sleep(6)  # the last windows close (idle sources) and their latency is recorded
        text = worker.metrics()
    rate = (last_n - (first_n or 0)) / max(end_t - (first_t or end_t), 1e-9)
    return {"batch": batch, "events": last_n, "events_per_s": rate,
            "p50_ms": 1000 * (_quantile(text, 0.5) or float("nan")),
            "p99_ms": 1000 * (_quantile(text, 0.99) or float("nan"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--batch", type=int, default=100, help="events per message, batched run")
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-live")
    args = ap.parse_args()
    with console.status("simulating"):
        sim = write_simulation(args.work / "sim", args.days, args.seed)
    expected = sum(sim.counts.values()) + sim.invalid
    rows = []
    with EmbeddedBroker() as broker:
        for batch in (1, args.batch):
            rows.append(run(broker.bootstrap, sim.events_path, batch, expected, args.work))
            console.print(rows[-1])
    table = Table(title=f"one worker, {expected:,} events ({args.days} simulated days)")
    for col in ("events/message", "events", "events/s", "close→alert p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["batch"]), f"{r['events']:,.0f}", f"{r['events_per_s']:,.0f}",
                      f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
