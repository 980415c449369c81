"""A burst into an idle worker alerts as replay does (issue 10, item 5).

One `stream-guard worker` with a short STREAM_GUARD_IDLE_AFTER starts on empty topics and stays
idle (no event on any topic) for twice that long, so every source partition is caught up and
silent for longer than IDLE_AFTER. Then a simulated dump of ~44k events is produced at full
speed, one event per message. The burst reaches the partitions one after the other: when idleness
was judged by wall time alone, the first partitions to wake closed windows the others were about
to fill -- a false critical complaint_rate alert and 146 "late partials" that replay of the same
events does not give. The merger now calls a source idle only when it is caught up (its reports
merged up to the partition's end, as the worker's tick gave it) AND it sent no data for
IDLE_AFTER, and a source waking up presumes the others live again (aggregate/merger.py). Checked
here: the alerts topic holds exactly replay's alerts, the worker closed the windows replay
closes, and /metrics counts no late partial for any metric.

Deterministic: the worker is ready once its owner has adopted every metric (its log says so).
After the burst it is drained once its group has committed every event partition to its end (a
batch is acked only once its reports were sent) and then the partials topic up to where it ended
at that moment (the owner acks a report once it has merged and saved it): no report is still on
its way to be counted late. Its windows are closed once /metrics counts replay's; the alerts are
all read once the topic gave as many records as /metrics counts. Every wait has a deadline; the
one fixed wait is the idle period itself (the scenario).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stream_guard.backtest.replay import Replayer
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.files import iter_dump
from stream_guard.ingest.kafka import consumer
from stream_guard.ingest.kafka_produce import produce_dump
from stream_guard.runtime.local import LocalWorker
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from tests.conftest import REPO
from tests.parity import per_episode, replay_alerts

pytestmark = pytest.mark.integration

IDLE_AFTER_S = 3.0
IDLE_FOR_S = 2 * IDLE_AFTER_S  # silence before the burst: every source caught up and idle
SIMULATION = SimulationConfig(days=4, seed=2, scale=0.07)
"""43,698 records (invalid and late ones included) whose replay raises 5 alert records: a
complaint_rate warning episode and a gmv episode escalating to critical."""
SESSION_TIMEOUT_S = {False: 6, True: 20}  # paused: far longer than producing the burst (~3 s)
READY_S = 60.0  # worker start, group join, first ticks
DONE_S = 60.0  # the burst consumed and the alerts read
CLOSE_S = 30.0  # once the burst is consumed: the last windows close IDLE_AFTER after it

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(worker: LocalWorker) -> Samples:
    text = worker.metrics()
    if not text:
        return {}
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def _by(samples: Samples, name: str, label: str) -> Counter[str]:
    """The samples of one family summed by one label."""
    out: Counter[str] = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels)[label]] += int(value)
    return out


def _until(
    what: str, deadline: float, worker: LocalWorker, probe: Callable[[], bool], fail: bool = True,
) -> None:
    """Polls `probe()` until true; at `deadline` fails (or, not `fail`, returns); fails at once
    if the worker exits. Failures name the worker's log."""
    while True:
        assert worker.running, f"the worker exited; see {worker.log_path}"
        if probe():
            return
        if time.monotonic() > deadline:
            if fail:
                pytest.fail(f"timed out waiting for {what}; see {worker.log_path}")
            return
        time.sleep(0.2)


@contextmanager
def _paused(worker: LocalWorker) -> Iterator[None]:
    """The worker's process group stopped (SIGSTOP) inside the block, continued after."""
    pid = worker._proc.pid if worker._proc is not None else None
    assert pid is not None and worker.running
    os.killpg(pid, signal.SIGSTOP)  # LocalWorker starts it in a session of its own
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


@pytest.mark.parametrize("paused", [False, True], ids=["live", "paused"])
def test_full_speed_burst_into_an_idle_worker_alerts_as_replay_does(
    bootstrap: str, kafka_topics: str, tmp_path: Path, rules: list[MetricRule], codec: Codec,
    topics: dict[str, TopicSpec], paused: bool,
) -> None:
    """live: the worker consumes the burst as it is produced; its first batch is whatever its
    first fetch caught (0-250 ms of production), so how far that batch reaches in event time
    varies from run to run. paused: the worker is stopped (SIGSTOP, well within its session
    timeout) while the burst is produced and meets all of it at once, as a worker that fell
    behind would: its first batch spans days of event time over every partition, the case
    where closing on the first source that wakes up is sure to cut windows short."""
    records = list(Simulation(SIMULATION).records())
    replayer = Replayer(rules, codec)
    expected = replay_alerts(replayer, records)
    assert len(expected) >= 4, "the input must raise alerts in replay"
    replayed = replayer.stats
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records))

    app_id = f"idle-burst-{uuid.uuid4().hex[:8]}"
    env = {
        "STREAM_GUARD_BROKER": bootstrap, "STREAM_GUARD_TOPIC_PREFIX": kafka_topics,
        "STREAM_GUARD_APP_ID": app_id,
        "STREAM_GUARD_RULES": str(REPO / "alert_rules"),
        "STREAM_GUARD_IDLE_AFTER": f"{IDLE_AFTER_S:g}s",
        "STREAM_GUARD_SESSION_TIMEOUT": f"{SESSION_TIMEOUT_S[paused]}s",
        "STREAM_GUARD_STORE": "memory://", "STREAM_GUARD_DATA_DIR": str(tmp_path / "data"),
        "SLACK_BOT_TOKEN": "",
    }
    metrics = [r.metric for r in rules]
    want = (sum(replayed.events.values()) + sum(replayed.invalid.values())
            + sum(replayed.duplicates.values()))
    events = [TopicPartition(kafka_topics + t, p) for t in sorted(codec.event_topics)
              for p in range(topics[t].partitions)]
    partials = [TopicPartition(kafka_topics + "partials", p)
                for p in range(topics["partials"].partitions)]
    got: list[dict[str, Any]] = []
    with LocalWorker(env, tmp_path / "worker.log") as worker, \
            consumer(bootstrap, auto_offset_reset="earliest") as alerts, \
            consumer(bootstrap, group_id=app_id) as group:  # reads the worker's commits only
        alerts.subscribe([kafka_topics + "alerts"])

        def committed_up_to(ends: dict[TopicPartition, int]) -> bool:
            return all((group.committed(tp) or 0) >= end for tp, end in ends.items())

        def owning() -> bool:  # the owner adopts a metric on its first tick (runtime/app.py)
            log = worker.log_path.read_text(errors="replace")
            return all(f"owning {m}:" in log for m in metrics)

        def consumed() -> bool:
            s = _scrape(worker)
            return sum(sum(_by(s, family, "topic").values()) for family in (
                "stream_guard_events_total", "stream_guard_events_invalid_total",
                "stream_guard_events_duplicate_total")) >= want

        def closed() -> bool:
            done = _by(_scrape(worker), "stream_guard_windows_closed_total", "metric")
            return all(done[m] >= replayed.windows_closed[m] for m in metrics)

        def read_all() -> bool:  # as many records as a scrape taken after the polls counts
            for batch in alerts.poll(timeout_ms=200).values():
                got.extend(orjson.loads(r.value) for r in batch)
            raised = sum(_by(_scrape(worker), "stream_guard_alerts_total", "metric").values())
            return len(got) >= raised

        _until("the owner to adopt every metric", time.monotonic() + READY_S, worker, owning)
        idle_until = time.monotonic() + IDLE_FOR_S
        while time.monotonic() < idle_until:  # the idle period itself (not a wait for a state)
            assert worker.running, f"the worker exited; see {worker.log_path}"
            for batch in alerts.poll(timeout_ms=200).values():
                got += [orjson.loads(r.value) for r in batch]
        assert got == [], "alerts before any event"
        counted = _by(_scrape(worker), "stream_guard_events_total", "topic")
        assert sum(counted.values()) == 0, "events before the burst"  # (exported at 0)

        with _paused(worker) if paused else nullcontext():
            produced = produce_dump(bootstrap, iter_dump(dump), prefix=kafka_topics, batch=1)
        assert produced.events == len(records)
        print(f"produced {produced.events} events in {produced.seconds:.1f} s")
        deadline = time.monotonic() + DONE_S
        _until(f"the worker to consume the {want} records", deadline, worker, consumed)
        produced_to = {tp: end for tp, end in group.end_offsets(events).items() if end > 0}
        _until("the worker to commit every event partition", deadline, worker,
               lambda: committed_up_to(produced_to))
        reported_to = group.end_offsets(partials)  # every report of the burst is before these
        _until("the owner to commit every report", deadline, worker,
               lambda: committed_up_to(reported_to))
        # Not a hard wait: a worker that closed windows wrongly may never close as many as
        # replay does; what it did close is judged below, its late partials named first.
        _until("every window replay closes", time.monotonic() + CLOSE_S, worker, closed,
               fail=False)
        _until("the alert records the worker counts", deadline, worker, read_all)
        final = _scrape(worker)

    log = worker.log_path.read_text(errors="replace")
    assert log.count("Setting newly assigned partitions") == 1, "the worker was rebalanced"
    late = _by(final, "stream_guard_late_partials_total", "metric")
    assert {m: late.get(m) for m in metrics} == {m: 0 for m in metrics}, (
        "late partials per metric (windows closed while a source was still filling them; "
        f"None: the owner merged nothing for it): {dict(late)}")
    assert _by(final, "stream_guard_windows_closed_total", "metric") == +replayed.windows_closed
    n = replayer.partitions["partials"]  # each episode in order (episodes interleave)
    assert per_episode(got, n) == per_episode(expected, n)
