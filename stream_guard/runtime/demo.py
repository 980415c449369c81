"""`stream-guard demo`: the whole live system on this machine, from nothing, in about 2 minutes.

1. starts the embedded Kafka-protocol broker and creates the topics of topics/;
2. starts a worker (`stream-guard worker`, a child process, configured by environment);
3. simulates a few days of marketplace traffic with labelled incidents and streams it, event time
   accelerated (default: a day per 20 s), batched 20 events per message;
4. shows every alert as it lands on the alerts topic, with the content of the Slack message (the
   worker also posts to Slack when SLACK_BOT_TOKEN is set);
5. ends by itself: a summary of alerts and of incidents caught or missed, and stops what it
   started.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from stream_guard.backtest.evaluate import Incident, evaluate, load_labels
from stream_guard.broker import EmbeddedBroker
from stream_guard.config.rules import load_rules
from stream_guard.config.topics import load_topics
from stream_guard.ingest.files import count_lines, iter_dump
from stream_guard.ingest.kafka import consumer
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.ingest.kafka_topics import create_topics
from stream_guard.runtime.local import LocalWorker, wait_for
from stream_guard.simulate.writer import write_simulation
from stream_guard.sinks.console import print_alert
from stream_guard.types import AlertRecord

__all__ = ["add_arguments", "run_demo"]

PREFIX = "demo-"
IDLE_S = 10  # the worker's idle_after: how long after the last event the final windows close


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--days", type=int, default=4, help="simulated days (default 4)")
    p.add_argument("--seed", type=int, default=11, help="simulation seed (default 11)")
    p.add_argument("--speed", type=float, default=4320.0,
                   help="event time per wall time (default 4320: a day per 20 s)")
    p.add_argument("--rules", type=Path, default=Path("alert_rules"), help="rules directory")
    p.add_argument("--out", type=Path, default=Path("out/demo-live"), help="work directory")


def run_demo(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    out: Path = args.out
    topics = load_topics()
    rules = load_rules(args.rules, topics)
    console.rule("stream-guard demo")
    with console.status("simulating traffic"):
        sim = write_simulation(out / "sim", args.days, args.seed)
    console.print(f"simulated {args.days} days: {sum(sim.counts.values()):,} events, "
                  f"{sim.incidents} labelled incidents (seed {args.seed})")
    alerts: list[AlertRecord] = []
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, topics.values(), prefix=PREFIX)
        console.print(f"broker on {broker.bootstrap}; topics created (prefix {PREFIX!r})")
        env = {
            "STREAM_GUARD_BROKER": broker.bootstrap, "STREAM_GUARD_TOPIC_PREFIX": PREFIX,
            "STREAM_GUARD_APP_ID": "stream-guard-demo", "STREAM_GUARD_RULES": str(args.rules),
            "STREAM_GUARD_IDLE_AFTER": f"{IDLE_S}s", "STREAM_GUARD_SESSION_TIMEOUT": "6s",
            "STREAM_GUARD_DATA_DIR": str(out / "worker"), "STREAM_GUARD_LOG_LEVEL": "info",
        }
        with LocalWorker(env, out / "worker.log") as worker:
            console.print(f"worker started (log {worker.log_path}, "
                          f"metrics http://127.0.0.1:{worker.metrics_port}/metrics)")
            if not wait_for(lambda: bool(worker.metrics()), 30):
                console.print("[red]the worker did not come up; see its log[/]")
                return 1
            stop = threading.Event()
            watcher = threading.Thread(target=_watch_alerts,
                                       args=(broker.bootstrap, alerts, console, stop), daemon=True)
            watcher.start()
            _stream(broker.bootstrap, sim.events_path, args.speed, console)
            _settle(alerts, worker, IDLE_S + 4)
            stop.set()
            watcher.join(5)
    (out / "alerts.jsonl").write_bytes(
        b"".join(orjson.dumps(a, option=orjson.OPT_APPEND_NEWLINE) for a in alerts))
    _summary(console, alerts, load_labels(sim.labels_path),
             {r.metric: int(r.window.total_seconds() * 1000) for r in rules})
    return 0


def _stream(bootstrap: str, path: Path, speed: float, console: Console) -> None:
    total = count_lines([path])
    columns = (TextColumn("streaming"), BarColumn(),
               TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("stream", total=total)
        produce_dump(bootstrap, iter_dump(path), prefix=PREFIX, speed=speed, batch=20,
                     on_progress=lambda n: bar.advance(task, n))


def _watch_alerts(bootstrap: str, sink: list[AlertRecord], console: Console,
                  stop: threading.Event) -> None:
    with consumer(bootstrap, auto_offset_reset="earliest") as c:
        c.subscribe([PREFIX + "alerts"])
        while not stop.is_set():
            for records in c.poll(timeout_ms=200).values():
                for rec in records:
                    alert = orjson.loads(rec.value)
                    sink.append(alert)
                    print_alert(console, alert)


SETTLE_MAX_S = 300.0
"""The longest the demo waits for a lagging worker after the last event was sent."""
_PROGRESS = ("stream_guard_events_total", "stream_guard_windows_closed_total")


def _settle(alerts: list[AlertRecord], worker: LocalWorker, quiet_s: float) -> None:
    """Waits until the worker has closed the last windows: for `quiet_s`, no new alert and no
    event read or window closed (a worker slowed by other load is still catching up when the
    stream ends: waiting for alerts alone gave up on the last incidents)."""
    def progress() -> tuple[int, list[str]]:
        lines = worker.metrics().splitlines()
        return len(alerts), [line for line in lines if line.startswith(_PROGRESS)]

    seen, since, start = progress(), time.monotonic(), time.monotonic()
    while (time.monotonic() - since < quiet_s and worker.running
           and time.monotonic() - start < SETTLE_MAX_S):
        time.sleep(0.5)
        now = progress()
        if now != seen:
            seen, since = now, time.monotonic()


def _summary(
    console: Console, alerts: list[AlertRecord], incidents: list[Incident],
    windows_ms: dict[str, int],
) -> None:
    ev = evaluate(alerts, incidents, windows_ms)
    table = Table(title="incidents")
    for col in ("incident", "metric", "slice", "caught by"):
        table.add_column(col)
    for inc in incidents:
        hits = ev.matches.get(inc.id, [])
        where = ", ".join(f"{k}={v}" for k, v in inc.slice.items()) or "platform-wide"
        table.add_row(inc.id, inc.metric, where,
                      ", ".join(hits) if hits else "[red]missed[/]")
    console.print(table)
    t = ev.total
    console.print(f"{len(alerts)} alert records, {len(ev.episodes)} episodes "
                  f"({len(ev.false_episodes)} not matching a labelled incident); "
                  f"{t.detected}/{t.incidents} incidents caught")
