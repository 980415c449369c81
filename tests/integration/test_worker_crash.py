"""Invariant 3 on real Kafka: a worker killed with SIGKILL mid-stream and restarted loses no window
and counts no event twice: the alerts topic ends up with exactly replay's alerts.

The kill comes once the worker has published a few alerts, so that every part of its state is in
use: sources with reported but uncommitted batches, an owner with open windows, a model, episodes.
What a crash may leave is the last alert records written a second time, verbatim (alerts are
sent before the model that produced them is saved); the notifier sends each (episode, status,
sequence) once, so an analyst never sees them twice."""

from __future__ import annotations

import time
import uuid
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
from tests.conftest import REPO
from tests.parity import comparable, parity_records, replay_alerts

pytestmark = pytest.mark.integration

DEADLINE_S = 240.0
QUIET_S = 12.0  # > the worker's idle_after: the last windows have closed
KILL_AFTER_ALERTS = 1


def _key(alert: dict[str, Any]) -> bytes:
    return orjson.dumps(comparable(alert))


def test_sigkill_mid_stream_then_restart_gives_replays_alerts(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
) -> None:
    """With memory:// tables, rebuilt from their changelogs. (rocksdb:// is not trusted yet: run
    this way against the dev broker, about 1 run in 4 restored an early owner-state value from
    its local files and alerted wrongly; see docs/observability.md.)"""
    records = parity_records()
    expected = [_key(a) for a in replay_alerts(Replayer(rules, codec), records)]
    assert len(expected) >= KILL_AFTER_ALERTS + 2

    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
    produce_dump(bootstrap, iter_dump(dump), prefix=kafka_topics)  # one event per message
    env = {
        "STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": kafka_topics,
        "STREAM_GUARD_APP_ID": f"crash-{uuid.uuid4().hex[:8]}",
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"), "STREAM_GUARD_IDLE_AFTER": "8s",
        "STREAM_GUARD_SESSION_TIMEOUT": "6s", "STREAM_GUARD_DATA_DIR": str(tmp_path / "data"),
        "STREAM_GUARD_BATCH_MAX": "500", "STREAM_GUARD_STORE": "memory://",
    }
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE_S
    with consumer(bootstrap, auto_offset_reset="earliest") as alerts:
        alerts.subscribe([kafka_topics + "alerts"])

        def poll() -> bool:
            before = len(got)
            for batch in alerts.poll(timeout_ms=100).values():
                got.extend(orjson.loads(r.value) for r in batch)
            return len(got) > before

        first = LocalWorker(env, tmp_path / "w1.log").start()
        try:
            while len(got) < KILL_AFTER_ALERTS and time.monotonic() < deadline:
                poll()
        finally:
            first.kill()
        assert len(got) >= KILL_AFTER_ALERTS, "the first worker published no alerts in time"
        assert len(got) < len(expected), "the first worker finished before it was killed"

        with LocalWorker(env, tmp_path / "w2.log") as second:
            # the group waits out the killed member's session before it assigns anything
            assert wait_for(lambda: "stream_guard_partial_reports_total{" in second.metrics(), 90)
            quiet_since = time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
                if poll():
                    quiet_since = time.monotonic()

    unique = list(dict.fromkeys(_key(a) for a in got))
    assert unique == expected
    assert len(got) - len(unique) <= KILL_AFTER_ALERTS + 2  # only the last ones, if any
