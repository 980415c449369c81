"""Live throughput of one `stream-guard worker` and its window-close-to-alert latency.

    python benchmarks/live.py                 # 1 simulated day; backlog and paced runs: ~3 min
    python benchmarks/live.py --days 2 --batch 100 --paced-rate 20000
    python benchmarks/live.py --only backlog-1 --profile out/prof   # py-spy the worker

Two kinds of run, each for two message formats (one event per Kafka message; `--batch` events
per message, a JSON array), each with a fresh worker (the real `stream-guard worker` in a child
process, memory store) on its own topics:

- **backlog**: the dump is produced *first*, then the worker drains it. The rate is measured from
  the worker's /metrics (`stream_guard_events_total` + invalid), from the first event counted to
  the last, so the group join is not counted. This is the worker's capacity. Its latency figures
  include queueing behind the backlog (a window's report waits behind every message produced
  before it), so they say little about the system's own latency.
- **paced**: the worker joins first, then the dump is produced at a fixed rate below capacity
  (`--paced-rate` events/s, by event time: `produce_dump(speed=...)`), as live traffic arrives.
  Its latency is the system's: what a window's close waits for when the worker keeps up.

The latency is the worker's `stream_guard_alert_latency_seconds` histogram: wall time from the
moment a source sent the report that let a window close to the owner's alert records being on the
alerts topic (p50/p99 interpolated within buckets).

`--profile DIR` samples the worker with py-spy (`pip install py-spy`) during each run it makes and
prints where its CPU time goes (own time and inclusive time per function, event-loop thread and
others apart); the raw stacks are kept in DIR for flame graphs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from stream_guard.runtime.local import LocalWorker, wait_for  # noqa: E402
from stream_guard.simulate.writer import write_simulation  # noqa: E402

console = Console()

SIM_SECONDS_PER_DAY = 86_400
POLL_S = 0.1
"""Between two scrapes of the worker's /metrics while it drains. Each scrape costs the worker a few
ms of its core (collectors, HTTP): ~7% of it at 20 scrapes/s, ~3% at 10. Rates are measured
between the first and the last scrape that saw the count move: this is also their resolution."""
READY = b"[^Worker]: Ready"
"""What Faust's worker logs (info level) once it has joined and recovered: then pacing starts."""
JOIN_S = 90.0
"""Longest wait for the first event to be counted: the worker joins its group and recovers its
tables first, which takes 5-30 s on a loaded machine (a drain that gave up after 10 s reported 0
events)."""
QUIET_S = 10.0
"""Once events are counted: the drain is over when the count has not moved for this long."""
SETTLE_S = 6.0
"""After the last event: the last windows close (sources idle after 5 s) and their latency is
recorded."""


@dataclass(frozen=True)
class Row:
    mode: str  # "backlog" or "paced"
    batch: int  # events per message
    events: float
    events_per_s: float  # drain rate (backlog) or the rate the worker kept up with (paced)
    events_per_cpu_s: float  # events per second of the worker's CPU time (all its threads)
    p50_ms: float
    p99_ms: float
    windows: float  # alert-latency observations (windows closed with a report)
    loop: LoopTime  # how the event-loop thread spent the drain

    @property
    def name(self) -> str:
        return f"{self.mode}-{self.batch}"


@dataclass(frozen=True)
class LoopTime:
    """Shares of the drain's wall time the worker's event-loop thread spent on a CPU, runnable but
    waiting for one (a shared machine), and asleep (waiting for the broker, a timer, a lock)."""

    on_cpu: float
    runnable: float
    asleep: float

    def __str__(self) -> str:
        return (f"{100 * self.on_cpu:.0f}/{100 * self.runnable:.0f}/{100 * self.asleep:.0f}"
                if self.on_cpu == self.on_cpu else "n/a")


def _schedstat(pid: int | None) -> tuple[float, float]:
    """(seconds on a CPU, seconds waiting on a run queue) of thread `pid` so far (Linux
    schedstat; NaN when unavailable)."""
    try:
        on_cpu, waiting, _slices = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
        return int(on_cpu) / 1e9, int(waiting) / 1e9
    except (OSError, ValueError):
        return float("nan"), float("nan")


def _loop_time(wall: float, before: tuple[float, float], after: tuple[float, float]) -> LoopTime:
    on_cpu, runnable = ((a - b) / max(wall, 1e-9) for a, b in zip(after, before, strict=True))
    return LoopTime(on_cpu, runnable, 1.0 - on_cpu - runnable)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _consumed(text: str) -> tuple[float, float]:
    """(events counted, valid or not; the worker's CPU seconds so far)."""
    samples = _samples(text)
    return (sum(v for (name, _), v in samples.items()
                if name in ("stream_guard_events_total", "stream_guard_events_invalid_total")),
            samples.get(("process_cpu_seconds_total", ()), 0.0))


def _latency_buckets(text: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    for (name, labels), v in _samples(text).items():
        if name == "stream_guard_alert_latency_seconds_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    return buckets


def _quantile(buckets: dict[float, float], q: float) -> float:
    """`histogram_quantile` of cumulative buckets (NaN when empty)."""
    if not buckets or buckets[max(buckets)] == 0:
        return float("nan")
    total, prev_le, prev_n = buckets[float("inf")], 0.0, 0.0
    for le in sorted(buckets):
        n = buckets[le]
        if n >= q * total:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((q * total - prev_n) / max(n - prev_n, 1e-9))
        prev_le, prev_n = le, n
    return float("nan")


# ------------------------------------------------------------------------------ profiling


class Profiler:
    """py-spy attached to a worker process from the first event to the last; summarised after."""

    def __init__(self, out_dir: Path, name: str) -> None:
        if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
            raise SystemExit("--profile needs py-spy: pip install py-spy")
        self.path = out_dir / f"{name}.txt"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, pid: int) -> None:
        """Samples without pausing the worker (``--nonblocking``): paused 200 times a second on a
        loaded machine, a worker drained at half its rate and looked asleep half of the time."""
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
             "--threads", "--nonblocking", "--output", str(self.path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            self._proc.wait(30)


def profile_table(path: Path, title: str, top: int = 18) -> Table:
    """Own and inclusive shares per function, from py-spy's collapsed stacks (`--threads`).

    The event-loop thread (the one running `faust` agents) is what limits a worker; the others
    (aiokafka's consumer thread, the metrics server) get one line each.
    """
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        thread, frames = frames[0], [_short(f) for f in frames[1:]]
        threads[thread] += int(n)
        if not any("run_worker" in f for f in frames[:12]):
            continue  # not the event-loop (main) thread
        own[frames[-1]] += int(n)
        for f in set(frames):
            incl[f] += int(n)
    main = sum(own.values()) or 1
    table = Table(title=f"{title}: {main:,} samples on the event-loop thread "
                        f"({100 * main / max(sum(threads.values()), 1):.0f}% of all threads' "
                        "samples; how busy it was: the loop column)")
    table.add_column("own %", justify="right")
    table.add_column("function (most own time)")
    table.add_column("incl %", justify="right")
    table.add_column("function (most inclusive time)")
    mine, mincl = own.most_common(top), [kv for kv in incl.most_common(top + 8)
                                          if kv[1] < main][:top]
    for (f1, n1), (f2, n2) in zip(mine, mincl, strict=False):
        table.add_row(f"{100 * n1 / main:.1f}", f1, f"{100 * n2 / main:.1f}", f2)
    return table


def _short(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module.py)`: one row per function, not per line."""
    func, _, where = frame.partition(" (")
    return f"{func} ({where.rsplit('/', 1)[-1].split(':')[0]})" if where else func


def _worker_pid(worker: LocalWorker) -> int:
    """The worker's process id (LocalWorker keeps its Popen private; it is our only child
    running `stream_guard.cli worker`)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"stream_guard.cli" in cmd and str(worker.metrics_port).encode() in Path(
                    f"/proc/{pid}/environ").read_bytes():
                return int(pid)
    raise RuntimeError("worker process not found")


# ------------------------------------------------------------------------------ runs


def _env(bootstrap: str, prefix: str, work: Path, log_level: str = "warning") -> dict[str, str]:
    return {"STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefix,
            "STREAM_GUARD_APP_ID": prefix.rstrip("-"),
            "STREAM_GUARD_RULES": str(REPO / "alert_rules"),
            "STREAM_GUARD_IDLE_AFTER": "5s", "STREAM_GUARD_SESSION_TIMEOUT": "6s",
            "STREAM_GUARD_DATA_DIR": str(work / prefix), "STREAM_GUARD_LOG_LEVEL": log_level}


def _ready(worker: LocalWorker) -> bool:
    """True once Faust logged that the worker joined its group and recovered its tables (the
    worker must log at info level)."""
    return worker.log_path.exists() and READY in worker.log_path.read_bytes()


@contextmanager
def _worker(bootstrap: str, prefix: str, work: Path, profiler: Profiler | None,
            log_level: str = "warning") -> Iterator[LocalWorker]:
    env = _env(bootstrap, prefix, work, log_level)
    with LocalWorker(env, work / f"{prefix}worker.log") as worker:
        try:
            yield worker
        finally:
            if profiler is not None:
                profiler.stop()


@dataclass(frozen=True)
class Drained:
    events: float
    events_per_s: float
    events_per_cpu_s: float
    loop: LoopTime


def _drain(worker: LocalWorker, expected: int, profiler: Profiler | None, label: str) -> Drained:
    """Waits until `expected` events were counted (or none for `QUIET_S`; `JOIN_S` for the
    first).

    Rates are taken between the first scrape that saw events and the one that saw the last
    count: per second of wall time, and per second of the worker's CPU time. The second is what
    to compare between runs on a machine that other work shares (wall-time rates then vary
    2x from run to run; CPU-time rates by a few %), and what one worker does with a core.
    Over the same span, the event-loop thread's scheduler times say whether it was busy, starved
    of a CPU or waiting (`LoopTime`).
    """
    first: tuple[float, float, float] | None = None  # (wall s, events, cpu s)
    last = (time.monotonic(), 0.0, 0.0)
    pid: int | None = None
    sched0 = sched1 = (float("nan"), float("nan"))
    with console.status(label) as status:
        while time.monotonic() - last[0] < (QUIET_S if first else JOIN_S):
            n, cpu = _consumed(worker.metrics() or "")
            now = time.monotonic()
            if n and first is None:
                first, pid = (now, n, cpu), _worker_pid(worker)
                sched0 = _schedstat(pid)
                if profiler is not None:
                    profiler.start(pid)
            if n != last[1]:
                last, sched1 = (now, n, cpu), _schedstat(pid)
            status.update(f"{label}: {int(n):,}/{expected:,}")
            if n >= expected:
                break
            time.sleep(POLL_S)
    if profiler is not None:
        profiler.stop()
    t0, n0, cpu0 = first or last
    t1, n1, cpu1 = last
    return Drained(n1, (n1 - n0) / max(t1 - t0, 1e-9), (n1 - n0) / max(cpu1 - cpu0, 1e-9),
                   _loop_time(t1 - t0, sched0, sched1))


def _row(mode: str, batch: int, drained: Drained, worker: LocalWorker) -> Row:
    time.sleep(SETTLE_S)
    buckets = _latency_buckets(worker.metrics())
    return Row(mode, batch, drained.events, drained.events_per_s, drained.events_per_cpu_s,
               1000 * _quantile(buckets, 0.5), 1000 * _quantile(buckets, 0.99),
               buckets.get(float("inf"), 0.0), drained.loop)


def run_backlog(bootstrap: str, dump: Path, batch: int, expected: int, work: Path,
                profiler: Profiler | None) -> Row:
    """Produce everything, then let a fresh worker drain it: capacity."""
    prefix = f"live-{batch}-{uuid.uuid4().hex[:6]}-"
    create_topics(bootstrap, load_topics().values(), prefix=prefix)
    with console.status(f"producing {expected:,} events, {batch} per message"):
        produce_dump(bootstrap, iter_dump(dump), prefix=prefix, batch=batch)
    with _worker(bootstrap, prefix, work, profiler) as worker:
        drained = _drain(worker, expected, profiler, f"backlog-{batch}: draining")
        return _row("backlog", batch, drained, worker)


def run_paced(bootstrap: str, dump: Path, batch: int, expected: int, work: Path, days: int,
              rate: float, profiler: Profiler | None) -> Row:
    """A fresh worker joins, then the dump arrives at `rate` events/s: the system's latency."""
    prefix = f"paced-{batch}-{uuid.uuid4().hex[:6]}-"
    create_topics(bootstrap, load_topics().values(), prefix=prefix)
    speed = days * SIM_SECONDS_PER_DAY * rate / expected
    with _worker(bootstrap, prefix, work, profiler, log_level="info") as worker:
        with console.status(f"paced-{batch}: waiting for the worker to join"):
            if not wait_for(lambda: _ready(worker), 60):
                raise RuntimeError(f"worker did not join; see {worker.log_path}")
        failed: list[BaseException] = []

        def produce() -> None:
            try:
                produce_dump(bootstrap, iter_dump(dump), prefix=prefix, batch=batch, speed=speed)
            except BaseException as exc:  # reported by the main thread
                failed.append(exc)

        producer = threading.Thread(target=produce, name="paced-producer", daemon=True)
        producer.start()
        drained = _drain(worker, expected, profiler, f"paced-{batch}: {rate:,.0f} events/s offered")
        producer.join()
        if failed:
            raise failed[0]
        return _row("paced", batch, drained, worker)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--batch", type=int, default=100, help="events per message, batched runs")
    ap.add_argument("--paced-rate", type=float, default=10_000,
                    help="events/s offered in the paced runs (below the single-event capacity)")
    ap.add_argument("--only", default="",
                    help="comma-separated runs among backlog-1, backlog-B, paced-1, paced-B")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy each run into this dir")
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-live")
    args = ap.parse_args()
    with console.status("simulating"):
        sim = write_simulation(args.work / "sim", args.days, args.seed)
    expected = sum(sim.counts.values()) + sim.invalid
    wanted = {w.strip().replace("-B", f"-{args.batch}") for w in args.only.split(",") if w}
    rows: list[Row] = []
    with EmbeddedBroker() as broker:
        for mode in ("backlog", "paced"):
            for batch in (1, args.batch):
                name = f"{mode}-{batch}"
                if wanted and name not in wanted:
                    continue
                profiler = Profiler(args.profile, name) if args.profile else None
                if mode == "backlog":
                    row = run_backlog(broker.bootstrap, sim.events_path, batch, expected,
                                      args.work, profiler)
                else:
                    row = run_paced(broker.bootstrap, sim.events_path, batch, expected,
                                    args.work, args.days, args.paced_rate, profiler)
                rows.append(row)
                console.print(row)
                if profiler is not None:
                    console.print(profile_table(profiler.path, name))
    table = Table(title=f"one worker, {expected:,} events ({args.days} simulated days); paced "
                        f"runs offered {args.paced_rate:,.0f} events/s")
    for col in ("run", "events/message", "events", "events/s", "events/CPU-s",
                "close→alert p50 ms", "p99 ms", "windows", "loop % cpu/runnable/asleep"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r.mode, str(r.batch), f"{r.events:,.0f}", f"{r.events_per_s:,.0f}",
                      f"{r.events_per_cpu_s:,.0f}", f"{r.p50_ms:.0f}", f"{r.p99_ms:.0f}",
                      f"{r.windows:,.0f}", str(r.loop))
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
