"""Invariant 3 on real Kafka: a worker killed with SIGKILL and restarted loses no window and counts
no event twice: the alerts topic ends up with exactly replay's alerts.

Two kill points. Mid-stream, once the worker has closed part of replay's windows, so that every
part of its state is in use: sources with reported but uncommitted batches, an owner with open
windows, a model, episodes. And once its sources have read and committed every event while the
owner still lags: the restarted worker reads no event at all and must finish from the partials
alone. (Both failed, about one run in two under load, until the owner stopped trusting Faust's
committed offsets: runtime/cursor.py.)
What a crash may leave is the last alert records written a second time, verbatim (alerts are
sent before the model that produced them is saved); the notifier sends each (episode, status,
sequence) once, so an analyst never sees them twice.

Alerts are compared owner by owner and episode by episode (tests/parity.py `per_episode`):
owners on different workers publish side by side, and one owner's records are spread by
fingerprint over the alerts partitions, read back interleaved; each episode stays in order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka import consumer
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.runtime.local import LocalWorker, wait_for
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.types import AlertRecord
from tests.conftest import REPO
from tests.parity import comparable, per_episode, replay_alerts

pytestmark = pytest.mark.integration

DEADLINE_S = 240.0
QUIET_S = 12.0
"""After replay's number of alerts: > the worker's idle_after, so the last windows have closed."""
KILL_AT = 0.3
"""Mid-stream: the first worker is killed once it has closed this share of replay's windows."""

COMMITTED_S = 3.0
"""The worker commits acked offsets every second (runtime/app.py): all committed after this."""
IDLE_AFTER_SOURCES_DONE_S = 16.0
"""STREAM_GUARD_IDLE_AFTER when killed with the sources done: >> COMMITTED_S, so windows are
left to close (the expected alerts are awaited whatever QUIET_S says)."""


def _total(metrics_text: str, series: str) -> int:
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                   if line.startswith(series + "{")))


def _kill_point(when: str, windows: int, events: int) -> Callable[[str], bool]:
    """Mid-stream (sources and owner busy), or once the sources have read every event and
    committed it (the last windows wait for idleness, the owner may lag: the restarted worker
    reads no event at all and must finish from the partials alone)."""
    if when == "mid-stream":
        return lambda text: _total(text, "stream_guard_windows_closed_total") >= windows * KILL_AT
    read_at: list[float] = []

    def committed(text: str) -> bool:
        if not read_at and _total(text, "stream_guard_events_total") >= events:
            read_at.append(time.monotonic())
        return bool(read_at) and time.monotonic() - read_at[0] > COMMITTED_S
    return committed


def _key(alert: AlertRecord | dict[str, Any]) -> bytes:
    return orjson.dumps(comparable(alert))


@dataclass
class _Scenario:
    """Replay's alerts for two simulated days, and the same records on the topics."""

    expected: list[AlertRecord]
    windows: int
    events: int
    env: dict[str, str]
    partitions: int  # of the partials topic: one owner each

    def owners(self, alerts: list[Any]) -> dict[int, dict[str, list[tuple[Any, ...]]]]:
        """Each owner's episodes, each one's alerts in order (episodes interleave freely)."""
        return per_episode(alerts, self.partitions)


def _scenario(bootstrap: str, prefix: str, tmp_path: Path, rules: list[MetricRule],
              codec: Codec) -> _Scenario:
    records = list(Simulation(SimulationConfig(days=2, seed=3, scale=0.3)).records())
    replayer = Replayer(rules, codec)
    expected = replay_alerts(replayer, records)
    assert len(expected) >= 2
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
    produce_dump(bootstrap, iter_dump(dump), prefix=prefix)  # one event per message
    env = {
        "STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": prefix,
        "STREAM_GUARD_APP_ID": f"crash-{uuid.uuid4().hex[:8]}",
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"), "STREAM_GUARD_IDLE_AFTER": "8s",
        "STREAM_GUARD_SESSION_TIMEOUT": "6s", "STREAM_GUARD_DATA_DIR": str(tmp_path / "data"),
        "STREAM_GUARD_BATCH_MAX": "500", "STREAM_GUARD_STORE": "memory://",
    }
    return _Scenario(expected, sum(replayer.stats.windows_closed.values()),
                     sum(replayer.stats.events.values()), env,
                     codec.topics["partials"].partitions)


class _Alerts:
    """The alerts topic as the test reads it."""

    def __init__(self, reader: Any, deadline: float) -> None:
        self.reader, self.deadline = reader, deadline
        self.got: list[dict[str, Any]] = []

    def poll(self) -> bool:
        before = len(self.got)
        for batch in self.reader.poll(timeout_ms=100).values():
            self.got.extend(orjson.loads(r.value) for r in batch)
        return len(self.got) > before

    def settle(self, expected: int) -> None:
        """All of replay's alerts (or the deadline), then a quiet spell for any extra one."""
        while len(set(map(_key, self.got))) < expected and time.monotonic() < self.deadline:
            self.poll()
        quiet_since = time.monotonic()
        while time.monotonic() < self.deadline and time.monotonic() - quiet_since < QUIET_S:
            if self.poll():
                quiet_since = time.monotonic()

    def unique(self, tmp_path: Path, expected: list[AlertRecord]) -> list[dict[str, Any]]:
        """The records got, each first copy only (a crash may write the last ones again)."""
        firsts = {_key(a): a for a in reversed(self.got)}
        unique = [firsts[k] for k in dict.fromkeys(_key(a) for a in self.got)]
        (tmp_path / "alerts.got.jsonl").write_bytes(b"\n".join(map(_key, unique)))  # post-mortem
        (tmp_path / "alerts.expected.jsonl").write_bytes(b"\n".join(map(_key, expected)))
        return unique


@pytest.mark.parametrize("when", ["mid-stream", "sources done"])
def test_sigkill_then_restart_gives_replays_alerts(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
    when: str,
) -> None:
    """With memory:// tables, rebuilt from their changelogs (rocksdb://: docs/observability.md)."""
    sc = _scenario(bootstrap, kafka_topics, tmp_path, rules, codec)
    if when == "sources done":  # the last windows must still wait for idleness at the kill
        # (COMMITTED_S after the last event read): a metric whose topics were read to their
        # end seconds before the last event (of another topic) went idle before the kill
        # with 8 s, and on a quiet machine the owner then closed every window first
        sc.env["STREAM_GUARD_IDLE_AFTER"] = f"{IDLE_AFTER_SOURCES_DONE_S:g}s"
    due = _kill_point(when, sc.windows, sc.events)
    with consumer(bootstrap, auto_offset_reset="earliest") as reader:
        reader.subscribe([kafka_topics + "alerts"])
        alerts = _Alerts(reader, time.monotonic() + DEADLINE_S)
        first = LocalWorker(sc.env, tmp_path / "w1.log").start()
        text = ""
        try:  # windows close in bursts (one order across metrics): kill by windows, not alerts
            while not due(text) and time.monotonic() < alerts.deadline:
                alerts.poll()
                text = first.metrics()
        finally:
            first.kill()
        alerts.poll()
        assert due(text), f"the first worker was not {when} in time"
        assert _total(text, "stream_guard_windows_closed_total") < sc.windows, (
            "the first worker finished before it was killed")
        published_first = len(alerts.got)

        with LocalWorker(sc.env, tmp_path / "w2.log") as second:
            # the group waits out the killed member's session before it assigns anything
            ok = wait_for(lambda: "stream_guard_partial_reports_total{" in second.metrics(), 90)
            (tmp_path / "w2.metrics").write_text(second.metrics())
            assert ok
            alerts.settle(len(sc.expected))
            (tmp_path / "w2.metrics").write_text(second.metrics())  # for a post-mortem

    unique = alerts.unique(tmp_path, sc.expected)
    assert sc.owners(unique) == sc.owners(sc.expected)
    # only records the crash interrupted are written again (verbatim)
    assert len(alerts.got) - len(unique) <= published_first


def test_three_workers_an_owner_killed_and_one_added_give_replays_alerts(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
) -> None:
    """Rebalances mid-stream: three workers share the event and partials partitions, so the
    owners of the metrics are spread over them (asserted: two workers have merged reports);
    one owner is SIGKILLed once part of the windows closed, and a fourth worker joins. The
    survivors take its partitions over (sources resume, the owners restore from their own
    changelog partitions and read their gaps)."""
    sc = _scenario(bootstrap, kafka_topics, tmp_path, rules, codec)
    assert sc.partitions > 1
    workers = [LocalWorker(sc.env, tmp_path / f"w{i}.log").start() for i in (1, 2, 3)]
    try:
        with consumer(bootstrap, auto_offset_reset="earliest") as reader:
            reader.subscribe([kafka_topics + "alerts"])
            alerts = _Alerts(reader, time.monotonic() + DEADLINE_S)
            owners = _wait_for_owners(workers, sc.windows * KILL_AT, alerts)
            assert len(owners) >= 2, f"one worker owns every metric: {owners}"
            workers[max(owners, key=lambda i: sum(owners[i].values()))].kill()
            workers.append(LocalWorker(sc.env, tmp_path / "w4.log").start())
            alerts.settle(len(sc.expected))
            for i, w in enumerate(workers, 1):
                (tmp_path / f"w{i}.metrics").write_text(w.metrics())
    finally:
        for w in workers:
            w.stop()
    assert sc.owners(alerts.unique(tmp_path, sc.expected)) == sc.owners(sc.expected)


def _wait_for_owners(
    workers: list[LocalWorker], closed: float, alerts: _Alerts
) -> dict[int, dict[str, int]]:
    """Once `closed` windows are: worker index -> metric -> reports it merged, for the workers
    that merged any (the owners; an owner that has caught up merges nothing for a while, so
    the counts are since the worker started)."""
    while time.monotonic() < alerts.deadline:
        alerts.poll()
        texts = [w.metrics() for w in workers]
        if sum(_total(t, "stream_guard_windows_closed_total") for t in texts) >= closed:
            return {i: merged for i, text in enumerate(texts) if (merged := _merged(text))}
    raise AssertionError("the workers closed too few windows in time")


def _merged(metrics_text: str) -> dict[str, int]:
    """Metric -> reports merged, of one worker's /metrics (the metrics it owned)."""
    merged: dict[str, int] = {}
    for line in metrics_text.splitlines():
        if line.startswith("stream_guard_partial_reports_total{") and 'outcome="merged"' in line:
            metric = line.split('metric="', 1)[1].split('"', 1)[0]
            if (n := int(float(line.rsplit(" ", 1)[1]))) > 0:
                merged[metric] = n
    return merged
