"""How fast a bare Faust agent drains a topic: stock faust-streaming vs stream_guard's transport.

    python benchmarks/faust_raw.py                 # 200k single, 5k x 100 batched: ~2.5 minutes
    python benchmarks/faust_raw.py --single 50000 --batched 500 --variants stock,eager
    python benchmarks/faust_raw.py --variants all --repeat 3 --no-profile   # medians, ~10 min
    python benchmarks/faust_raw.py --agent-yields 2 --variants stock,eager,eager-nopace
    python benchmarks/faust_raw.py --bootstrap 127.0.0.1:9092             # an existing broker

Starts the embedded broker (unless --bootstrap is given), produces two workloads into two
single-partition topics -- N single-event messages (~140-byte JSON objects) and M messages of K
events each (JSON arrays) -- and lets each variant drain each workload with a fresh consumer
group, in a fresh worker subprocess (nothing carries over between runs). The agent body is
`orjson.loads` and a count: ~1 µs per event, so the figures are Faust's cost, not the agent's
(--agent-yields K adds K `await asyncio.sleep(0)` per event: an agent that awaits something).
Rates are measured from the first event the agent sees to the last, so the group join (held by
the broker for session_timeout/2) is not counted. Then one more run per profiled variant, under
cProfile (event-loop thread only; the aiokafka consumer thread is not seen), prints what explains
the figures -- event-loop iterations, tasks and scheduled callbacks per message -- and the
functions with the most own time. cProfile slows everything ~3x; read its shares, not its rates.

Variants (the eager-* ones each change one thing in eager):
  stock          faust-streaming as installed: `aiokafka://`, worker fetch wait 1500 ms.
  stock-fetch10  upstream drain loop, worker consumer fetch_max_wait 10 ms (our ConsumerThread).
  eager          stream_guard.runtime.transport: eager delivery paced by Faust's buffer-pressure
                 signals, worker fetch wait 10 ms.
  eager-cython   eager + cython_optimizations=True (Faust's opt-in repaired Cython fast paths).
  eager-quiet    eager, with a Monitor whose per-message hooks do nothing (prices the sensors).
  eager-take     eager, agent iterates `stream.take(1000, within=0.05)` batches.
Run only when named (--variants ... or all): no gain, unsafe, or kept to explain a choice:
  eager-nopace   eager delivery without pacing by buffer pressure: why the transport paces
                 (deliveries into full buffers block, partitions pause for a second).
  eager-buffer   eager, stream_buffer_maxsize=16384 (default 4096).
  eager-noacks   eager, topic acks=False: not a safe setting (no offsets are committed), shown
                 only to price Faust's per-message ack bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

VARIANTS: dict[str, str] = {
    "stock": "faust-streaming 0.15.3 as installed",
    "stock-fetch10": "upstream drain loop, fetch wait 10 ms",
    "eager": "stream_guard transport (eager, paced delivery; fetch 10 ms)",
    "eager-cython": "eager + cython_optimizations=True",
    "eager-quiet": "eager + per-message Monitor hooks as no-ops",
    "eager-take": "eager + agent uses stream.take(1000, within=50ms)",
    "eager-nopace": "eager, without pacing by stream buffer pressure",
    "eager-buffer": "eager + stream_buffer_maxsize=16384",
    "eager-noacks": "eager + topic acks=False (unsafe; prices acks)",
}
DEFAULT_VARIANTS = ("stock", "stock-fetch10", "eager", "eager-cython", "eager-quiet", "eager-take")
PROFILED = ("stock", "eager")
SESSION_TIMEOUT_S = 6.0  # Tansu holds JoinGroup for session_timeout/2: ~3 s to join
RUN_TIMEOUT_S = 120.0
EVENT = (
    b'{"ts":1717171717123,"tenant":"shop-0042","metric":"orders","value":123.456,'
    b'"labels":{"region":"eu-west","channel":"web","sku":"SKU-000123"},"v":1}'
)


@dataclass(frozen=True)
class Workload:
    name: str
    topic: str
    messages: int
    events_per_message: int
    agent_yields: int = 0  # `await asyncio.sleep(0)` per event: an agent that awaits something


@dataclass(frozen=True)
class RunResult:
    variant: str
    workload: str
    messages: int
    events: int
    seconds: float
    startup_seconds: float
    profile: dict[str, Any]

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


# --------------------------------------------------------------------------- broker + data


@contextmanager
def _broker(bootstrap: str | None) -> Iterator[str]:
    """Yield a bootstrap address: the given one, or a fresh embedded broker's."""
    if bootstrap:
        yield bootstrap
        return
    from stream_guard.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap


async def _produce(bootstrap: str, workloads: list[Workload]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(w.topic, 1, 1) for w in workloads])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        for w in workloads:
            body = EVENT if w.events_per_message == 1 else _array(w.events_per_message)
            pending = [await producer.send(w.topic, body) for _ in range(w.messages)]
            await asyncio.gather(*pending)
    finally:
        await producer.stop()


def _array(n: int) -> bytes:
    return b"[" + b",".join([EVENT] * n) + b"]"


# --------------------------------------------------------------------------- worker side


def _app_settings(variant: str, bootstrap: str, group: str) -> dict[str, Any]:
    from stream_guard.runtime import transport

    settings: dict[str, Any] = {
        "store": "memory://",
        "datadir": str(Path(tempfile.gettempdir()) / f"stream-guard-{group}-data"),
        "web_enabled": False,
        "broker_session_timeout": SESSION_TIMEOUT_S,
        "broker_heartbeat_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "topic_allow_declare": False,
    }
    if variant == "stock":
        settings["broker"] = f"kafka://{bootstrap}"
    elif variant == "stock-fetch10":
        # Worker subprocesses run one variant each, so flipping the class switch is local.
        transport.Consumer.eager_delivery = False
        settings["broker"] = transport.broker_url(bootstrap)
    else:
        settings["broker"] = transport.broker_url(bootstrap)
    if variant == "eager-nopace":
        transport.Consumer.pace_delivery = False
    if variant == "eager-cython":
        settings["cython_optimizations"] = True
    if variant == "eager-buffer":
        settings["stream_buffer_maxsize"] = 16384
    if variant == "eager-quiet":
        settings["monitor"] = _quiet_monitor()
    return {"id": group, **settings}


def _quiet_monitor() -> Any:
    """A Faust Monitor whose per-message hooks do nothing (the rest of it still works)."""
    from faust.sensors import Monitor

    class QuietMonitor(Monitor):
        def on_message_in(self, *args: Any) -> None:
            pass

        def on_stream_event_in(self, *args: Any) -> None:
            return None

        def on_stream_event_out(self, *args: Any) -> None:
            pass

        def on_message_out(self, *args: Any) -> None:
            pass

        def track_tp_end_offset(self, *args: Any) -> None:
            pass

    return QuietMonitor()


async def _consume(variant: str, bootstrap: str, w: Workload, profile: bool) -> dict[str, Any]:
    import faust
    import orjson

    group = f"bench-{variant}-{w.name}-{uuid.uuid4().hex[:8]}"
    app = faust.App(**_app_settings(variant, bootstrap, group))
    topic = app.topic(w.topic, value_serializer="raw", acks=variant != "eager-noacks")
    state = {"messages": 0, "events": 0}
    first = asyncio.Event()
    done = asyncio.Event()
    profiler = cProfile.Profile() if profile else None

    async def seen(value: bytes) -> None:
        for _ in range(w.agent_yields):
            await asyncio.sleep(0)
        decoded = orjson.loads(value)
        if not state["messages"]:
            first.set()
            if profiler is not None:
                profiler.enable()
        state["messages"] += 1
        state["events"] += len(decoded) if isinstance(decoded, list) else 1
        if state["messages"] == w.messages:
            if profiler is not None:
                profiler.disable()
            done.set()

    if variant == "eager-take":

        @app.agent(topic)
        async def agent(stream: Any) -> None:
            async for values in stream.take(1000, within=0.05):
                for value in values:
                    await seen(value)

    else:

        @app.agent(topic)
        async def agent(stream: Any) -> None:
            async for value in stream:
                await seen(value)

    app.finalize()
    started = time.perf_counter()
    await app.start()
    try:
        await asyncio.wait_for(first.wait(), RUN_TIMEOUT_S)
        t_first = time.perf_counter()
        await asyncio.wait_for(done.wait(), RUN_TIMEOUT_S)
        t_last = time.perf_counter()
    finally:
        await app.stop()
    return {
        "variant": variant,
        "workload": w.name,
        "messages": state["messages"],
        "events": state["events"],
        "seconds": t_last - t_first,
        "startup_seconds": t_first - started,
        "profile": _profile_summary(profiler, w.messages) if profiler is not None else {},
    }


# Synchronous asyncio functions whose call counts per message explain the figures exactly
# (cProfile counts every resumption of a coroutine as a call, so coroutines are left out).
MECHANICS = {
    "event-loop iterations": ("base_events.py", "_run_once"),
    "tasks created": ("base_events.py", "create_task"),
    "callbacks scheduled": ("base_events.py", "_call_soon"),
}


def _profile_summary(profiler: cProfile.Profile, messages: int, n: int = 8) -> dict[str, Any]:
    """Top functions by own time, and the per-message counts of `MECHANICS`."""
    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]  # {(file, line, fn): (cc, nc, tt, ct, callers)}
    total = sum(row[2] for row in rows.values()) or 1.0
    top = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:n]
    mechanics = {
        label: sum(row[1] for key, row in rows.items() if key[0].endswith(f) and key[2] == fn)
        / messages
        for label, (f, fn) in MECHANICS.items()
    }
    return {
        "seconds_per_message": total / messages,
        "mechanics": mechanics,
        "top": [
            {
                "function": _label(key),
                "own_share": row[2] / total,
                "calls_per_message": row[1] / messages,
            }
            for key, row in top
        ],
    }


def _label(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name
    parts = Path(file).parts
    for anchor in ("site-packages", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    return f"{name} ({'/'.join(parts[-3:])}:{line})"


def _worker_main(spec: str) -> None:
    cfg = json.loads(spec)
    w = Workload(**cfg["workload"])
    result = asyncio.run(_consume(cfg["variant"], cfg["bootstrap"], w, cfg["profile"]))
    print("RESULT " + json.dumps(result), flush=True)


# --------------------------------------------------------------------------- driver side


def _run(variant: str, bootstrap: str, w: Workload, profile: bool) -> RunResult:
    spec = {"variant": variant, "bootstrap": bootstrap, "workload": asdict(w), "profile": profile}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S * 2 + 30,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return RunResult(**json.loads(line[len("RESULT ") :]))
    raise RuntimeError(f"{variant}/{w.name} failed:\n{proc.stderr[-3000:]}")


def _results_table(results: list[RunResult]) -> Table:
    table = Table(title="Bare Faust agent draining one partition (first event → last event)")
    table.caption = "agent body: orjson.loads + count; one worker subprocess per run"
    for col in ("variant", "workload", "messages", "events", "seconds", "msgs/s", "events/s"):
        table.add_column(col, justify="left" if col in ("variant", "workload") else "right")
    table.add_column("vs stock", justify="right")
    stock = {r.workload: r.events_per_s for r in results if r.variant == "stock"}
    for r in results:
        ratio = f"{r.events_per_s / stock[r.workload]:.2f}x" if r.workload in stock else "-"
        table.add_row(
            r.variant,
            r.workload,
            f"{r.messages:,}",
            f"{r.events:,}",
            f"{r.seconds:.2f}",
            f"{r.messages_per_s:,.0f}",
            f"{r.events_per_s:,.0f}",
            ratio,
        )
    return table


def _mechanics_table(profiles: list[RunResult]) -> Table:
    table = Table(title="Per message, under cProfile (event-loop thread)")
    table.add_column("variant")
    for label in MECHANICS:
        table.add_column(label, justify="right")
    table.add_column("profiled µs", justify="right")
    for r in profiles:
        counts = [f"{r.profile['mechanics'][label]:.2f}" for label in MECHANICS]
        table.add_row(r.variant, *counts, f"{r.profile['seconds_per_message'] * 1e6:.0f}")
    return table


def _profile_table(r: RunResult) -> Table:
    table = Table(title=f"cProfile, {r.variant} / {r.workload}: most own time (event-loop thread)")
    table.add_column("own %", justify="right")
    table.add_column("calls/msg", justify="right")
    table.add_column("function")
    for row in r.profile["top"]:
        own, calls = row["own_share"] * 100, row["calls_per_message"]
        table.add_row(f"{own:.1f}", f"{calls:.2f}", row["function"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=200_000, help="single-event messages")
    parser.add_argument("--batched", type=int, default=5_000, help="batched messages")
    parser.add_argument("--events-per-message", type=int, default=100)
    parser.add_argument(
        "--agent-yields",
        type=int,
        default=0,
        help="times the agent awaits asyncio.sleep(0) per event (an agent awaiting I/O)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {', '.join(VARIANTS)} (or 'all')",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
    parser.add_argument("--profile-messages", type=int, default=50_000)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return 0
    variants = (
        list(VARIANTS) if args.variants == "all" else [v for v in args.variants.split(",") if v]
    )
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    run_id = uuid.uuid4().hex[:6]
    awaits = f", agent awaits {args.agent_yields}x" if args.agent_yields else ""
    workloads = [
        Workload(f"single{awaits}", f"bench-single-{run_id}", args.single, 1, args.agent_yields),
        Workload(
            f"batched x{args.events_per_message}{awaits}",
            f"bench-batched-{run_id}",
            args.batched,
            args.events_per_message,
            args.agent_yields,
        ),
    ]
    profiled = [] if args.no_profile else [v for v in PROFILED if v in variants]
    first = workloads[0]
    profile_load = Workload(first.name, first.topic, args.profile_messages, 1, args.agent_yields)
    console = Console(width=None if sys.stdout.isatty() else 120)
    results: list[RunResult] = []
    profiles: list[RunResult] = []
    total = len(variants) * len(workloads) * args.repeat + len(profiled)
    clock = time.perf_counter()
    with _broker(args.bootstrap) as bootstrap:
        console.print(f"broker {bootstrap}; producing {', '.join(_describe(w) for w in workloads)}")
        asyncio.run(_produce(bootstrap, workloads))
        step = 0
        for w in workloads:
            for variant in variants:
                runs = []
                for _ in range(args.repeat):
                    step += 1
                    runs.append(_step(console, step, total, clock, variant, bootstrap, w, False))
                results.append(sorted(runs, key=lambda r: r.events_per_s)[len(runs) // 2])
        for variant in profiled:
            step += 1
            profiles.append(
                _step(console, step, total, clock, variant, bootstrap, profile_load, True)
            )
    console.print(_results_table(results))
    if profiles:
        console.print(_mechanics_table(profiles))
    for r in profiles:
        console.print(_profile_table(r))
    console.print(f"total {time.perf_counter() - clock:.0f} s")
    return 0


def _describe(w: Workload) -> str:
    return f"{w.messages:,} x {w.events_per_message} event(s) to {w.topic}"


def _step(
    console: Console,
    step: int,
    total: int,
    clock: float,
    variant: str,
    bootstrap: str,
    w: Workload,
    profile: bool,
) -> RunResult:
    label = f"[{step}/{total}] {variant:<14} {w.name:<12}{' (cProfile)' if profile else ''}"
    with console.status(label):
        r = _run(variant, bootstrap, w, profile)
    console.print(
        f"{label} {r.messages_per_s:>10,.0f} msgs/s {r.events_per_s:>11,.0f} events/s"
        f"  (join {r.startup_seconds:.1f} s, elapsed {time.perf_counter() - clock:.0f} s)"
    )
    return r


if __name__ == "__main__":
    sys.exit(main())
