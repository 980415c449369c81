"""A real `stream-guard worker` on the embedded broker: its /metrics, scraped over HTTP, moves
exactly as events flow through Kafka (issue 3: "/metrics is scraped over HTTP and moves")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_guard.ingest.kafka import producer
from stream_guard.runtime.local import LocalWorker
from tests.conftest import REPO, T0, order

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0
"""Joining the group and the first rebalance take a few seconds on the embedded broker; the
deadline is generous so that a slow CI machine does not fail the test."""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _parse(text: str) -> Samples | None:
    if not text:
        return None
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _value(samples: Samples | None, name: str, **labels: str) -> float:
    return (samples or {}).get((name, frozenset(labels.items())), 0.0)


def _wait_for(worker: LocalWorker, done: Callable[[Samples], bool]) -> Samples:
    deadline = time.monotonic() + DEADLINE_S
    last: Samples | None = None
    while time.monotonic() < deadline:
        assert worker.running, f"the worker exited; see {worker.log_path}"
        last = _parse(worker.metrics())
        if last is not None and done(last):
            return last
        time.sleep(0.25)
    pytest.fail(f"/metrics did not reach the expected values; last scrape: {last}")


@pytest.fixture
def worker(bootstrap: str, kafka_topics: str, tmp_path: Path) -> Iterator[LocalWorker]:
    """`stream-guard worker` as a subprocess, killed at the end: a clean stop (SIGTERM) waits for
    the owner's unacked partials report (Faust's wait_empty) until LocalWorker's 20 s timeout
    kills it anyway, and nothing here checks the stop."""
    env = {
        "STREAM_GUARD_BROKER": f"kafka://{bootstrap}",
        "STREAM_GUARD_TOPIC_PREFIX": kafka_topics,
        "STREAM_GUARD_APP_ID": f"{kafka_topics}metrics",
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"),
        "STREAM_GUARD_TOPICS": str(REPO / "topics"),
        "STREAM_GUARD_STORE": "memory://",
        "STREAM_GUARD_DATA_DIR": str(tmp_path / "data"),
        "STREAM_GUARD_SESSION_TIMEOUT": "6s",
        "SLACK_BOT_TOKEN": "",
    }
    running = LocalWorker(env, tmp_path / "worker.log").start()
    try:
        yield running
    finally:
        running.kill()


def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    with producer(bootstrap) as p:
        for i, value in enumerate(values):
            p.send(topic, key=f"s{i}".encode(), value=value)
        p.flush()


def test_worker_metrics_move_as_events_flow(
    bootstrap: str, kafka_topics: str, worker: LocalWorker
) -> None:
    orders = kafka_topics + "orders"
    events = "stream_guard_events_total"
    invalid = "stream_guard_events_invalid_total"

    _send(bootstrap, orders, [orjson.dumps(order(T0 + i, i)) for i in range(40)] + [b"{oops"])
    first = _wait_for(worker, lambda s: _value(s, events, topic="orders") >= 40
                      and _value(s, invalid, topic="orders", reason="bad_json") >= 1)
    assert _value(first, events, topic="orders") == 40
    assert _value(first, invalid, topic="orders", reason="bad_json") == 1

    _send(bootstrap, orders, [orjson.dumps(order(T0 + 100 + i, 100 + i)) for i in range(25)])
    second = _wait_for(worker, lambda s: _value(s, events, topic="orders") >= 65)
    assert _value(second, events, topic="orders") == 65
    assert _value(second, invalid, topic="orders", reason="bad_json") == 1
    assert ("stream_guard_processing_lag_seconds", frozenset({("topic", "orders")})) in second
    # the owner reports its sources (set by every partials message, ticks included)
    sources = _wait_for(worker, lambda s: _value(
        s, "stream_guard_source_partitions", state="active") >= 1)
    assert _value(sources, "stream_guard_source_partitions", state="active") >= 1
