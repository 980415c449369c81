"""Scale: 100 metrics, a 100,000-value seller dimension, 1, 2 and 4 workers, restart at scale.

    python benchmarks/scale.py                          # 2 simulated days: ~30 min on 2 cores
    python benchmarks/scale.py --days 1 --scale 0.3 --workers 1,2   # a quick look
    python benchmarks/scale.py --skip-live              # replay, memory and checkpoints only
    python benchmarks/scale.py --replays 0 --workers 2  # one live run only
    python benchmarks/scale.py --idle                   # an idle worker's CPU share only

Inputs (benchmarks/scale_setup.py, cached under benchmarks/.data/): 100 rules generated from the
shipped ones (20 of them by ``seller_id``), and the simulated dump with its sellers re-drawn
from 100,000. Then, each figure printed as it comes and all of them in a JSON file (`--out`):

- **replay**: events/s and events per CPU-second of this process (`time.process_time`), the
  series kept, and the checkpoint: every metric's model and windows snapshot as the owner
  saves them (runtime/snapshot.py): the largest value (the producer refuses > 8 MB) and the
  total; peak RSS of the process.
- **live**, for each worker count: that many `stream-guard worker` processes on fresh topics
  drain the backlog (produced first). Per worker: events counted, CPU seconds, events per
  CPU-second, windows closed (the owner's work), peak RSS (VmHWM); the owner's CPU share and its
  close->alert latency (a backlog's: queueing included). The partials partition count is read
  from topics/ (runtime/reports.py): with 1 partition one worker owns every metric, whatever
  the worker count, which is what the balance columns show. The owner-state changelog is
  read back: its largest value and the total of the latest value per key.
- **restart** (after the 1-worker run): the worker is stopped and a new one started on the same
  group and topics with an empty data dir, so it restores its tables from the changelogs; the
  time from its start to Faust's "Ready" (tables recovered), and a fresh worker's on empty
  topics for comparison.

The machine may be shared: compare per-CPU-second figures, not wall rates.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import live  # noqa: E402  (benchmarks/live.py: scrapes, quantiles, scheduler times)
import scale_setup  # noqa: E402
from rich.console import Console  # noqa: E402

from stream_guard.backtest.replay import Replayer, build_replayer, iter_inputs, run_replayer  # noqa: E402
from stream_guard.broker import EmbeddedBroker  # noqa: E402
from stream_guard.config.rules import load_rules  # noqa: E402
from stream_guard.config.topics import load_topics  # noqa: E402
from stream_guard.ingest.files import count_lines, iter_dump  # noqa: E402
from stream_guard.ingest.kafka_produce import produce_dump  # noqa: E402
from stream_guard.ingest.kafka_topics import create_topics  # noqa: E402
from stream_guard.runtime.local import LocalWorker, wait_for  # noqa: E402
from stream_guard.runtime.snapshot import ModelSnapshot, encode_model, encode_windows  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402

console = Console(width=120)
MB = 1_000_000
QUIET_S = 300.0
"""A drain gives up when neither events nor closed windows moved for this long and no worker
was busy (`BUSY_CPU_S`). Long: with 100 metrics the owner closed nothing for minutes after the
sources had counted every event (its reports queued behind Faust's full producer buffer), and
its workers used little CPU meanwhile."""
WINDOWS_DONE = 0.97
"""A drain is over once the owner closed 97% of the windows expected (`expected_windows`): the
last windows of each metric close only once sources go idle, or not at all."""
BUSY_CPU_S = 2.5
"""A worker that used more than 2.5 CPU-seconds between two scrapes (5 s apart) is still busy
(an idle owner of 100 metrics uses ~1.5: their ticks, runtime/agents.py)."""


# ------------------------------------------------------------------------------ inputs


def prepare(work: Path, days: int, scale: float, seed: int, metrics: int) -> tuple[Path, Path]:
    """(rules dir, backlog), cached under `work`."""
    rules = work / f"rules-{metrics}"
    if not rules.exists():
        scale_setup.write_rules(rules, metrics)
    events = work / f"events-{days}d-x{scale:g}-seed{seed}.jsonl"
    if not events.exists():
        with console.status("simulating"):
            sim = write_simulation(work / f"sim-{days}d-x{scale:g}-seed{seed}", days, seed,
                                   scale=scale)
        with console.status("re-drawing sellers"):
            sellers = scale_setup.reseller(sim.events_path, events, seed)
        console.print(f"backlog: {count_lines([events]):,} records, {sellers:,} distinct sellers "
                      f"(of {scale_setup.SELLERS:,})")
    return rules, events


# ------------------------------------------------------------------------------ replay


def replay(rules: Path, events: Path) -> dict[str, Any]:
    """One replay: rates, series kept, checkpoint sizes, peak RSS."""
    total = count_lines([events])
    replayer = build_replayer(rules)
    alerts: list[Any] = []
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] // 50_000 != (done[0] - n) // 50_000:
            console.print(f"  replay {done[0]:,}/{total:,} records, "
                          f"{time.process_time() - cpu0:.0f} CPU-s", markup=False)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    records = run_replayer(replayer, iter_inputs([events]), alerts.append, progress)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stats = replayer.stats
    return {
        "records": records, "wall_s": wall, "cpu_s": cpu, "events_per_s": records / wall,
        "events_per_cpu_s": records / cpu, "alerts": len(alerts),
        "series": replayer.engine.series_count(),
        "series_admitted": sum(stats.admitted_series.values()),
        "series_evicted": sum(stats.evicted_series.values()),
        "series_folded": sum(stats.folded_series.values()),
        "checkpoint": checkpoint_sizes(replayer),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB,
    }


def checkpoint_sizes(replayer: Replayer) -> dict[str, Any]:
    """Every metric's snapshots as the owner saves them, and how long encoding them took."""
    engine, cpu0 = replayer.engine, time.process_time()
    models = {r.metric: len(encode_model(ModelSnapshot(engine.metric_state(m),
                                                       engine.shared_state(), None, 0)))
              for m, r in enumerate(engine.rules)}
    windows = {r.metric: len(encode_windows(replayer.mergers[m].state))
               for m, r in enumerate(engine.rules)}
    top = max(models, key=models.__getitem__)
    return {"largest_model_bytes": models[top], "largest_model_metric": top,
            "total_model_bytes": sum(models.values()),
            "largest_windows_bytes": max(windows.values()),
            "total_windows_bytes": sum(windows.values()),
            "encode_cpu_s": time.process_time() - cpu0,
            "models_over_4mb": sorted(m for m, n in models.items() if n > 4 * MB)}


# ------------------------------------------------------------------------------ live


@dataclass
class WorkerFigures:
    events: float = 0.0
    cpu_s: float = 0.0
    windows: float = 0.0
    peak_rss_mb: float = 0.0
    events_per_cpu_s: float = 0.0


@dataclass
class LiveFigures:
    workers: int
    partials_partitions: int
    complete: bool  # the owner closed (nearly) every window
    events: float
    events_s: float  # wall, first event counted -> last
    total_s: float  # wall, first event counted -> last window closed
    events_per_s: float  # the sources' rate
    end_to_end_per_s: float  # events / total_s: detection included
    events_per_cpu_s: float  # all workers' events over all workers' CPU, detection included
    owner_cpu_share: float
    p50_ms: float
    p99_ms: float
    per_worker: list[WorkerFigures] = field(default_factory=list)
    changelog: dict[str, float] = field(default_factory=dict)


def _env(bootstrap: str, prefix: str, data: Path, rules: Path, log: str) -> dict[str, str]:
    data.mkdir(parents=True, exist_ok=True)  # Faust makes the last level only
    return {"STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefix,
            "STREAM_GUARD_APP_ID": prefix.rstrip("-"), "STREAM_GUARD_RULES": str(rules),
            "STREAM_GUARD_IDLE_AFTER": "5s", "STREAM_GUARD_SESSION_TIMEOUT": "10s",
            "STREAM_GUARD_DATA_DIR": str(data), "STREAM_GUARD_LOG_LEVEL": log}


def _scrape(worker: LocalWorker) -> tuple[float, float, float]:
    """(events counted, CPU seconds, windows closed) of one worker so far."""
    text = worker.metrics() or ""
    events, cpu = live._consumed(text)
    windows = sum(v for (name, _), v in live._samples(text).items()
                  if name == "stream_guard_windows_closed_total") if text else 0.0
    return events, cpu, windows


def _peak_rss_mb(worker: LocalWorker) -> float:
    try:
        status = Path(f"/proc/{live._worker_pid(worker)}/status").read_text()
    except (OSError, RuntimeError):
        return float("nan")
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024 / MB


@dataclass
class Drained:
    events_s: float  # wall seconds from the first event counted to the last
    total_s: float  # ... to the last window closed (the owner done)
    spans: list[Any]  # per worker: (first, last) scrapes
    complete: bool  # the owner closed `WINDOWS_DONE` of the expected windows


def drain(workers: list[LocalWorker], expected: int, windows: int, label: str) -> Drained:
    """Waits until every event is counted and the owner has closed `WINDOWS_DONE` of the
    `windows` expected, then `SETTLE_S` of quiet; gives up after `QUIET_S` with nothing moving
    and no worker busy. Measured from the last scrape where every worker answered and none had
    counted an event (a busy worker's /metrics may not answer for seconds)."""
    first: list[Any] = [(0.0, 0.0, 0.0)] * len(workers)
    last = list(first)
    t_first = t_events = t_change = None
    zero: tuple[float, list[Any]] | None = None
    moved = time.monotonic()
    while time.monotonic() - moved < (QUIET_S if t_first else live.JOIN_S * 2):
        now, snaps = time.monotonic(), [_scrape(w) for w in workers]
        if t_first is None and all(s[1] for s in snaps) and not any(s[0] for s in snaps):
            zero = now, snaps  # every worker up, no event yet: what the drain is measured from
        if t_first is None and any(s[0] for s in snaps):
            t_first, first = zero if zero else (now, snaps)
        if [(s[0], s[2]) for s in snaps] != [(s[0], s[2]) for s in last]:
            moved = t_change = now
        elif any(s[1] - p[1] > BUSY_CPU_S for s, p in zip(snaps, last, strict=True)):
            moved = now  # busy: an owner behind its reports, a source behind the producer
        n, closed = sum(s[0] for s in snaps), sum(s[2] for s in snaps)
        if sum(s[0] for s in last) != n:
            t_events = now
        last = snaps
        print(f"  {label}: {int(n):,}/{expected:,} events, {int(closed):,}/{windows:,} windows "
              "closed", flush=True)
        if n >= expected and closed >= WINDOWS_DONE * windows and now - moved >= live.SETTLE_S:
            break
        time.sleep(5.0)
    t0 = t_first or 0.0
    done = sum(s[2] for s in last) >= WINDOWS_DONE * windows
    return Drained((t_events or t0) - t0, (t_change or t0) - t0,
                   list(zip(first, last, strict=True)), done)


def expected_windows(rules: Path, days: int) -> int:
    """Windows the owner closes over `days` simulated days, every metric (about: the first and
    last may or may not be there)."""
    return sum(days * 86_400 // int(r.window.total_seconds())
               for r in load_rules(rules, load_topics()))


def _per_worker(spans: list[Any], workers: list[LocalWorker]) -> list[WorkerFigures]:
    out = []
    for (f, lst), w in zip(spans, workers, strict=True):
        events, cpu = lst[0] - f[0], lst[1] - f[1]
        out.append(WorkerFigures(events, cpu, lst[2], _peak_rss_mb(w),
                                 events / cpu if cpu > 0 else 0.0))
    return out


def run_live(bootstrap: str, events: Path, rules: Path, n: int, expected: tuple[int, int],
             work: Path, after: Callable[[str, Path], dict[str, float]] | None = None
             ) -> LiveFigures:
    """`n` workers drain the backlog; `expected`: (events, windows)."""
    prefix = f"scale{n}-{uuid.uuid4().hex[:6]}-"
    topics = load_topics()
    create_topics(bootstrap, topics.values(), prefix=prefix)
    with console.status(f"producing {expected[0]:,} events"):
        produce_dump(bootstrap, iter_dump(events), prefix=prefix, batch=1)
    workers = [LocalWorker(_env(bootstrap, prefix, work / prefix / f"w{i}", rules, "warning"),
                           work / f"{prefix}w{i}.log") for i in range(n)]
    try:
        for w in workers:
            w.start()
        drained = drain(workers, *expected, f"{n} worker(s)")
        per = _per_worker(drained.spans, workers)
        buckets: dict[float, float] = {}
        for w in workers:
            for le, v in live._latency_buckets(w.metrics()).items():
                buckets[le] = buckets.get(le, 0.0) + v
        changelog = asyncio.run(read_changelog(bootstrap, prefix))
    finally:
        for w in workers:
            w.stop()
    total_cpu = sum(p.cpu_s for p in per) or 1e-9
    events_n = sum(p.events for p in per)
    owner = max(per, key=lambda p: p.windows)
    figures = LiveFigures(n, topics["partials"].partitions, drained.complete, events_n,
                          drained.events_s, drained.total_s,
                          events_n / max(drained.events_s, 1e-9),
                          events_n / max(drained.total_s, 1e-9), events_n / total_cpu,
                          owner.cpu_s / total_cpu, 1000 * live._quantile(buckets, 0.5),
                          1000 * live._quantile(buckets, 0.99), per, changelog)
    if after is not None:
        figures.changelog |= after(prefix, work)
    return figures


async def read_changelog(bootstrap: str, prefix: str) -> dict[str, float]:
    """The owner-state changelog read back: records, largest value, total of the latest value
    per key (what a restore holds) and of the whole log (what a restore reads)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"{prefix.rstrip('-')}-owner-state-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[bytes, int] = {}
        count = total = largest = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for rec in batch:
                    size = len(rec.value or b"")
                    count, total, largest = count + 1, total + size, max(largest, size)
                    latest[rec.key or b""] = size
    finally:
        await consumer.stop()
    return {"records": count, "largest_bytes": largest, "log_bytes": total,
            "latest_bytes": sum(latest.values()), "keys": len(latest)}


def restart(bootstrap: str, rules: Path) -> Callable[[str, Path], dict[str, float]]:
    """After a run: a new worker on the same group restores the tables; seconds to Ready."""

    def measure(prefix: str, work: Path) -> dict[str, float]:
        env = _env(bootstrap, prefix, work / prefix / "restart", rules, "info")
        return {"restart_to_ready_s": _to_ready(env, work / f"{prefix}restart.log")}

    return measure


def _to_ready(env: dict[str, str], log: Path) -> float:
    t0 = time.monotonic()
    with LocalWorker(env, log) as worker:
        if not wait_for(lambda: live._ready(worker), 300):
            return float("nan")
        return time.monotonic() - t0


def fresh_start(bootstrap: str, rules: Path, work: Path) -> float:
    """A worker's start to Ready on empty topics: the fixed cost a restart adds to."""
    prefix = f"fresh-{uuid.uuid4().hex[:6]}-"
    create_topics(bootstrap, load_topics().values(), prefix=prefix)
    return _to_ready(_env(bootstrap, prefix, work / prefix, rules, "info"),
                     work / f"{prefix}.log")


def idle_cpu(bootstrap: str, rules: Path, work: Path, rounds: int = 3,
             seconds: float = 20.0) -> list[float]:
    """A worker on empty topics, once Ready: its share of a core in `rounds` spans of
    `seconds` (process_cpu_seconds_total): what the idle work of 100 metrics costs (ticks)."""
    prefix = f"idle-{uuid.uuid4().hex[:6]}-"
    create_topics(bootstrap, load_topics().values(), prefix=prefix)
    env = _env(bootstrap, prefix, work / prefix, rules, "info")
    with LocalWorker(env, work / f"{prefix}.log") as worker:
        if not wait_for(lambda: live._ready(worker), 300):
            return []
        time.sleep(10.0)  # past start-up
        shares = []
        for _ in range(rounds):
            cpu0, t0 = _scrape(worker)[1], time.monotonic()
            time.sleep(seconds)
            shares.append((_scrape(worker)[1] - cpu0) / (time.monotonic() - t0))
        return shares


# ------------------------------------------------------------------------------ main


def backlog_args(description: str) -> argparse.ArgumentParser:
    """The arguments that pick the rules and backlog (`prepare`), and the cache folder."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--metrics", type=int, default=100)
    ap.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".data" / "scale")
    return ap


def main() -> int:
    ap = backlog_args(__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--replays", type=int, default=1, help="replay runs (median reported; 0: none)")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--idle", action="store_true",
                    help="only an idle worker's CPU share (3 spans of 20 s)")
    ap.add_argument("--out", type=Path, default=None, help="JSON results (default: in --work)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # workers and broker stopped too
    rules, events = prepare(args.work, args.days, args.scale, args.seed, args.metrics)
    expected = count_lines([events])
    result: dict[str, Any] = {"records": expected, "metrics": args.metrics,
                              "partials_partitions": load_topics()["partials"].partitions}
    if args.idle:
        with EmbeddedBroker() as broker:
            shares = idle_cpu(broker.bootstrap, rules, args.work)
        console.print(f"idle worker, {args.metrics} metrics: "
                      f"{', '.join(f'{100 * s:.1f}%' for s in shares)} of a core")
        return 0
    runs = [replay(rules, events) for _ in range(args.replays)]
    if runs:
        result["replay"] = runs[0] | {
            "events_per_cpu_s": statistics.median(r["events_per_cpu_s"] for r in runs),
            "events_per_s": statistics.median(r["events_per_s"] for r in runs)}
        console.print("replay", result["replay"])
    if not args.skip_live:
        result["live"] = live_runs(args, rules, events, expected)
    out = args.out or args.work / f"result-{int(time.time())}.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    console.print(f"results in {out}")
    return 0


def live_runs(args: argparse.Namespace, rules: Path, events: Path,
              expected: int) -> list[dict[str, Any]]:
    figures = []
    with EmbeddedBroker() as broker:
        fresh = fresh_start(broker.bootstrap, rules, args.work)
        console.print(f"fresh worker to Ready on empty topics: {fresh:.1f} s")
        for n in (int(x) for x in args.workers.split(",")):
            after = restart(broker.bootstrap, rules) if n == 1 else None
            f = run_live(broker.bootstrap, events, rules, n,
                         (expected, expected_windows(rules, args.days)), args.work, after)
            f.changelog["fresh_to_ready_s"] = fresh
            console.print(asdict(f))
            figures.append(asdict(f))
    return figures


if __name__ == "__main__":
    sys.exit(main())
