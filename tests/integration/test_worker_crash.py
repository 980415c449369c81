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
QUIET_S = 12.0
"""After replay's number of alerts: > the worker's idle_after, so the last windows have closed."""
KILL_AT = 0.3
"""The first worker is killed once it has closed this share of replay's windows."""


def _windows_closed(metrics_text: str) -> int:
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                   if line.startswith("stream_guard_windows_closed_total{")))


def _key(alert: dict[str, Any]) -> bytes:
    return orjson.dumps(comparable(alert))


@pytest.mark.xfail(strict=False, reason=(
    "believed fixed in session 5 (changelog read to its real end, sources resumed and warmed, "
    "old ticks not re-applied by a restored owner): 7 passes in a row, 2 of them in CI. Kept "
    "non-strict until it has a longer record; then remove this mark."))
def test_sigkill_mid_stream_then_restart_gives_replays_alerts(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
) -> None:
    """With memory:// tables, rebuilt from their changelogs. (rocksdb:// is not trusted yet: run
    this way against the dev broker, about 1 run in 4 restored an early owner-state value from
    its local files and alerted wrongly; see docs/observability.md.)"""
    records = parity_records()
    replayer = Replayer(rules, codec)
    expected = [_key(a) for a in replay_alerts(replayer, records)]
    windows = sum(replayer.stats.windows_closed.values())
    assert len(expected) >= 2

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
        closed = 0
        try:  # windows close in bursts (one order across metrics): kill by windows, not alerts
            while closed < windows * KILL_AT and time.monotonic() < deadline:
                poll()
                closed = _windows_closed(first.metrics())
        finally:
            first.kill()
        poll()
        assert closed >= windows * KILL_AT, "the first worker closed too few windows in time"
        assert closed < windows, "the first worker finished before it was killed"
        published_first = len(got)

        with LocalWorker(env, tmp_path / "w2.log") as second:
            # the group waits out the killed member's session before it assigns anything
            assert wait_for(lambda: "stream_guard_partial_reports_total{" in second.metrics(), 90)
            # all of replay's alerts (or the deadline), then a quiet spell for any extra one
            while len(set(map(_key, got))) < len(expected) and time.monotonic() < deadline:
                poll()
            quiet_since = time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_S:
                if poll():
                    quiet_since = time.monotonic()
            (tmp_path / "w2.metrics").write_text(second.metrics())  # for a post-mortem

    unique = list(dict.fromkeys(_key(a) for a in got))
    (tmp_path / "alerts.got.jsonl").write_bytes(b"\n".join(unique))  # for a failure's post-mortem
    (tmp_path / "alerts.expected.jsonl").write_bytes(b"\n".join(expected))
    assert unique == expected
    # only records the crash interrupted are written again (verbatim)
    assert len(got) - len(unique) <= published_first
