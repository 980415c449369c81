"""Invariant 1 on real Kafka: two `stream-guard worker` processes on 4-partition topics give the
alerts replay gives (fingerprint, window, value, hints), and every invalid record lands on the
dead-letter topic with its reason while the good ones around it are all counted."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka import consumer
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.runtime.local import LocalWorker
from tests.conftest import REPO
from tests.parity import parity_records, per_episode, replay_alerts

pytestmark = pytest.mark.integration

DEADLINE_S = 180.0
QUIET_S = 12.0  # > the workers' idle_after: the last windows have closed


def _drain(bootstrap: str, until: float, want: dict[str, int]) -> dict[str, list[Any]]:
    """Values of each topic of `want` (one partition each) until each has its count and nothing
    more came on any for QUIET_S (one quiet spell for all: they fill at the same time)."""
    got: dict[str, list[Any]] = {topic: [] for topic in want}
    last = time.monotonic()
    with consumer(bootstrap, auto_offset_reset="earliest") as c:
        c.subscribe(list(want))
        while time.monotonic() < until:
            for tp, batch in c.poll(timeout_ms=300).items():
                got[tp.topic] += [orjson.loads(r.value) for r in batch]
                last = time.monotonic()
            if all(len(got[t]) >= n for t, n in want.items()) and (
                    time.monotonic() - last > QUIET_S):
                break
    return got


def test_two_workers_on_four_partitions_alert_as_replay_does(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
    topics: dict[str, TopicSpec],
) -> None:
    records = parity_records()
    assert topics["orders"].partitions == 4
    engine = Replayer(rules, codec)
    expected = replay_alerts(engine, records)
    invalid = Counter({k: v for k, v in engine.stats.invalid.items()})
    assert len(expected) >= 4 and sum(invalid.values()) > 50

    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))
    produce_dump(bootstrap, iter_dump(dump), prefix=kafka_topics, batch=50)
    env = {
        "STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": kafka_topics,
        "STREAM_GUARD_APP_ID": f"parity-{uuid.uuid4().hex[:8]}",
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"), "STREAM_GUARD_IDLE_AFTER": "8s",
        "STREAM_GUARD_SESSION_TIMEOUT": "6s", "STREAM_GUARD_DATA_DIR": str(tmp_path / "data"),
    }
    until = time.monotonic() + DEADLINE_S
    with LocalWorker(env, tmp_path / "w1.log"), LocalWorker(env, tmp_path / "w2.log"):
        got = _drain(bootstrap, until, {kafka_topics + "alerts": len(expected),
                                        kafka_topics + "dead_letters": sum(invalid.values())})
    alerts, dead = got[kafka_topics + "alerts"], got[kafka_topics + "dead_letters"]

    n = engine.partitions["partials"]  # each episode in order (episodes interleave)
    assert per_episode(alerts, n) == per_episode(expected, n)
    assert Counter((d["topic"], d["reason"]) for d in dead) == invalid
    assert all(d["origin"] and d["raw"] is not None for d in dead)
