"""/metrics over real HTTP while a real engine processes events: the series move exactly."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import values

from stream_guard.backtest.replay import Replayer, build_replayer
from stream_guard.observability import RuntimeMetrics, Server
from stream_guard.observability.metrics import ENGINE_COUNTERS
from stream_guard.stats import EngineStats
from tests.conftest import REPO, T0, order

DAY = 86_400_000
Scrape = Callable[[], Any]
Sample = Callable[..., float]


@pytest.fixture(scope="module")
def rules_dir() -> Path:
    return REPO / "alert_rules"


ONE_PARTITION = {"orders": 1, "complaints": 1, "listings": 1, "violations": 1,
                 "seller_onboarding": 1}


@pytest.fixture
def engine(rules_dir: Path, metrics: RuntimeMetrics) -> Replayer:
    rp = build_replayer(rules_dir)
    on_orders = [r for r in rp.rules if {s.topic for s in r.sources} == {"orders"}]
    rp = Replayer(on_orders, rp.codec, partitions=ONE_PARTITION)
    metrics.track_stats(lambda: [rp.stats])
    return rp


def _orders(engine: Replayer, n: int, start: int = 0, ts: int = T0) -> None:
    for i in range(start, start + n):
        engine.ingest("orders", None, order(ts + i, i), "test")


def test_event_counters_advance_by_exactly_what_was_ingested(
    engine: Replayer, scrape: Scrape, sample: Sample
) -> None:
    _orders(engine, 5)
    first = scrape()
    assert sample(first, "stream_guard_events_total", topic="orders") == 5

    _orders(engine, 3, start=5)
    engine.ingest("orders", None, orjson.dumps(order(T0 + 9, 9)), "test")  # bytes: valid
    engine.ingest("orders", None, b"{not json", "test")
    engine.ingest("orders", None, {k: v for k, v in order(T0, 10).items() if k != "gmv"}, "t")
    engine.ingest("orders", None, {**order(T0, 11), "ts": "yesterday"}, "test")
    second = scrape()

    assert sample(second, "stream_guard_events_total", topic="orders") == 5 + 3 + 1
    for reason in ("bad_json", "missing_field", "bad_timestamp"):
        assert sample(second, "stream_guard_events_invalid_total",
                      topic="orders", reason=reason) == 1
    assert sample(first, "stream_guard_events_invalid_total",
                  topic="orders", reason="bad_json") == 0


def test_windows_and_late_events_appear_once_the_watermark_moves(
    engine: Replayer, scrape: Scrape, sample: Sample
) -> None:
    _orders(engine, 5)
    assert sample(scrape(), "stream_guard_windows_closed_total", metric="gmv") == 0
    _orders(engine, 3, start=200, ts=T0 + DAY)  # a day later: the (robust) watermark moves
    engine.advance()
    _orders(engine, 2, start=100)  # back in the closed first hour: late for every orders metric
    after = scrape()

    closed = engine.stats.windows_closed["gmv"]
    assert closed > 0
    assert sample(after, "stream_guard_windows_closed_total", metric="gmv") == closed
    assert sample(after, "stream_guard_points_total", metric="gmv") == engine.stats.points["gmv"]
    assert sample(after, "stream_guard_events_late_total", topic="orders", metric="gmv") == 2


def test_every_engine_counter_is_exported_with_its_labels(
    metrics: RuntimeMetrics, scrape: Scrape, sample: Sample
) -> None:
    stats = EngineStats()
    stats.events["orders"] = 7
    stats.invalid[("orders", "bad_json")] = 2
    stats.late[("complaints", "complaint_rate")] = 3
    stats.windows_closed["gmv"] = 4
    stats.points["gmv"] = 40
    stats.anomalous_points["gmv"] = 1
    stats.alerts[("gmv", "critical", "firing")] = 1
    metrics.track_stats(lambda: [stats])
    got = scrape()

    assert {spec.field for spec in ENGINE_COUNTERS} == set(EngineStats.__dataclass_fields__)
    assert sample(got, "stream_guard_events_total", topic="orders") == 7
    assert sample(got, "stream_guard_events_invalid_total", topic="orders", reason="bad_json") == 2
    assert sample(got, "stream_guard_events_late_total",
                  topic="complaints", metric="complaint_rate") == 3
    assert sample(got, "stream_guard_windows_closed_total", metric="gmv") == 4
    assert sample(got, "stream_guard_points_total", metric="gmv") == 40
    assert sample(got, "stream_guard_anomalous_points_total", metric="gmv") == 1
    assert sample(got, "stream_guard_alerts_total",
                  metric="gmv", severity="critical", status="firing") == 1


def test_engines_are_summed_and_a_retired_engine_keeps_counting(
    metrics: RuntimeMetrics, scrape: Scrape, sample: Sample
) -> None:
    a, b = EngineStats(), EngineStats()
    a.events["orders"], b.events["orders"] = 3, 4
    live = [a, b]
    metrics.track_stats(lambda: live)
    assert sample(scrape(), "stream_guard_events_total", topic="orders") == 7

    metrics.retire(b)  # b's partitions were revoked: the worker drops it
    live.remove(b)
    assert sample(scrape(), "stream_guard_events_total", topic="orders") == 7


def test_ingesting_does_no_prometheus_work_and_a_scrape_reads_stats_once(
    rules_dir: Path, metrics: RuntimeMetrics, scrape: Scrape, sample: Sample,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hot path must not touch prometheus-client: every value update goes through
    `values.ValueClass` (MutexValue in a single process), so count those calls."""
    eng = build_replayer(rules_dir)
    reads = 0

    def stats() -> list[EngineStats]:
        nonlocal reads
        reads += 1
        return [eng.stats]

    metrics.track_stats(stats)
    updates = 0
    original_inc = values.MutexValue.inc

    def counting_inc(self: Any, amount: float) -> None:
        nonlocal updates
        updates += 1
        original_inc(self, amount)

    monkeypatch.setattr(values.MutexValue, "inc", counting_inc)
    _orders(eng, 2_000)
    assert (updates, reads) == (0, 0)

    assert sample(scrape(), "stream_guard_events_total", topic="orders") == 2_000
    assert reads == 1


def test_direct_observations(metrics: RuntimeMetrics, scrape: Scrape, sample: Sample) -> None:
    metrics.observe_score("gmv", 4.2)
    metrics.observe_score("gmv", 0.3)
    metrics.observe_alert_latency("gmv", 0.8)
    metrics.set_lag("orders", 2.5)
    metrics.set_watermark("gmv", T0 + 1_500)
    metrics.set_sources(active=3, idle=1)
    got = scrape()

    score = "stream_guard_detector_score"
    assert sample(got, f"{score}_count", metric="gmv") == 2
    assert sample(got, f"{score}_bucket", metric="gmv", le="4.0") == 1
    assert sample(got, f"{score}_bucket", metric="gmv", le="5.0") == 2
    latency = "stream_guard_alert_latency_seconds_bucket"
    assert sample(got, latency, metric="gmv", le="0.75") == 0  # 0.8 s: just missed 0.75 ...
    assert sample(got, latency, metric="gmv", le="1.0") == 1  # ... within the 1 s target
    assert sample(got, "stream_guard_processing_lag_seconds", topic="orders") == 2.5
    assert sample(got, "stream_guard_owner_watermark_seconds", metric="gmv") == (T0 + 1_500) / 1000
    assert sample(got, "stream_guard_source_partitions", state="active") == 3
    assert sample(got, "stream_guard_source_partitions", state="idle") == 1


def test_notifier_outcomes_from_both_paths_share_one_family(
    metrics: RuntimeMetrics, scrape: Scrape, sample: Sample
) -> None:
    from collections import Counter

    notifier_stats: Counter[tuple[str, str, str]] = Counter(
        {("sent", "oncall", "first"): 2, ("retried", "oncall", ""): 3})
    metrics.track_notifier(lambda: [notifier_stats])
    metrics.notifier_outcome("oncall", "deduped", "none")
    metrics.notifier_outcome("oncall", "sent", "first")  # a caller counting sends itself too
    got = scrape()

    name = "stream_guard_notifier_outcomes_total"
    assert sample(got, name, route="oncall", outcome="sent", reason="first") == 3
    assert sample(got, name, route="oncall", outcome="retried", reason="") == 3
    assert sample(got, name, route="oncall", outcome="deduped", reason="none") == 1


def test_bundles_in_one_process_do_not_collide(scrape: Scrape, sample: Sample) -> None:
    a, b = RuntimeMetrics(), RuntimeMetrics()
    a.set_lag("orders", 1.0)
    b.set_lag("orders", 9.0)
    assert a.registry.get_sample_value(
        "stream_guard_processing_lag_seconds", {"topic": "orders"}) == 1.0
    assert b.registry.get_sample_value(
        "stream_guard_processing_lag_seconds", {"topic": "orders"}) == 9.0
    assert "process_cpu_seconds_total" in {name for name, _ in scrape()}


def test_close_frees_the_port(metrics: RuntimeMetrics) -> None:
    server: Server = metrics.serve(0, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/metrics"
    assert server.port > 0
    server.close()
    assert not server.thread.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
