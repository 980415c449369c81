"""The Prometheus metrics of a worker: every name in one place, one registry per bundle.

Two kinds of series, by how often they change:

* **per event** (events, invalid, late, windows, points, alerts): the engine already counts them
  in `EngineStats`; `track_stats` exports those counters at scrape time, so the hot path never
  touches prometheus-client;
* **per window, alert or notification** (scores, alert latency, lag, watermarks, notifier
  outcomes): rare enough for ordinary prometheus-client metrics.

Labels are bounded by configuration (topics, metrics, severities, routes, reasons), never by
data: a detector score is observed per metric, not per slice value. The business gauges (value,
expected, score, anomalous slices, open episodes) are per metric for the platform slice only:
one series per configured metric each, whatever the cardinality of a dimension. Feedback is
counted per (metric, verdict); a metric name a button carried that no rule defines is `other`.

>>> from stream_guard.stats import EngineStats
>>> metrics = RuntimeMetrics()
>>> stats = EngineStats()
>>> metrics.track_stats(lambda: [stats])
>>> stats.events["orders"] += 2
>>> metrics.registry.get_sample_value("stream_guard_events_total", {"topic": "orders"})
2.0

`expect` exports every label set the configuration allows at 0 from the start, so that a
dashboard shows 0, not "No data", and `rate()` or an alert on `increase(...) > 0` sees the
first event (a series that appears at 1 has no increase):

>>> metrics.expect({"gmv": ["orders"]}, ["orders"])
>>> metrics.registry.get_sample_value(
...     "stream_guard_events_late_total", {"topic": "orders", "metric": "gmv"})
0.0
>>> metrics.registry.get_sample_value("stream_guard_detector_score_count", {"metric": "gmv"})
0.0
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from stream_guard.alert.silences import VERDICTS, ControlView
from stream_guard.observability.business import BusinessGauges
from stream_guard.observability.collector import (
    CounterSpec,
    CounterTableCollector,
    fold,
    snapshot,
)
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord, AlertSeverity, AlertStatus, Score

__all__ = [
    "ALERT_LATENCY_BUCKETS",
    "CONTROL_COUNTERS",
    "ENGINE_COUNTERS",
    "NOTIFIER_OUTCOMES",
    "REPORT_OUTCOMES",
    "SCORE_BUCKETS",
    "RuntimeMetrics",
    "Server",
]

ENGINE_COUNTERS: tuple[CounterSpec, ...] = (
    CounterSpec("events", "stream_guard_events", "Valid events consumed.", ("topic",)),
    CounterSpec("invalid", "stream_guard_events_invalid",
                "Invalid events sent to the dead-letter topic.", ("topic", "reason")),
    CounterSpec("duplicates", "stream_guard_events_duplicate",
                "Events whose event_id its partition had seen within the dedup horizon "
                "(dropped).", ("topic",)),
    CounterSpec("late", "stream_guard_events_late",
                "Events that arrived after their window closed (not counted in it).",
                ("topic", "metric")),
    CounterSpec("dropped_series", "stream_guard_series_dropped",
                "Slice updates a source added to their dimension's `other` at once because its "
                "window held 10 x max_series slices already (a flood of values).", ("metric",)),
    CounterSpec("isolated_windows", "stream_guard_windows_isolated",
                "Windows holding data alone in a long empty gap (events far in the past): "
                "dropped as late.", ("metric",)),
    CounterSpec("folded_series", "stream_guard_series_folded",
                "New slices given no series of their own (too little volume, or max_series "
                "reached), added to their dimension's `other`, per window.", ("metric",)),
    CounterSpec("admitted_series", "stream_guard_series_admitted",
                "New slices given a series (and a detector) of their own.", ("metric",)),
    CounterSpec("evicted_series", "stream_guard_series_evicted",
                "Series silent for hours dropped, with their detector, to make room for new "
                "slices at the metric's cap (max_series, or what ~2 MB of its detectors hold: "
                "aggregate/bounds.py).", ("metric",)),
    CounterSpec("skipped_windows", "stream_guard_windows_skipped",
                "Empty windows skipped when the watermark jumped far (bounded catch-up).",
                ("metric",)),
    CounterSpec("windows_closed", "stream_guard_windows_closed",
                "Windows closed, merged and scored.", ("metric",)),
    CounterSpec("points", "stream_guard_points", "Points (one per slice) scored.", ("metric",)),
    CounterSpec("anomalous_points", "stream_guard_anomalous_points",
                "Points whose score crossed the warning threshold.", ("metric",)),
    CounterSpec("alerts", "stream_guard_alerts",
                "Alert updates emitted (status firing/resolved: episodes open, change, end).",
                ("metric", "severity", "status")),
    CounterSpec("reports", "stream_guard_partial_reports",
                "Source reports at a metric's owner: merged; duplicate (merged before a restart, "
                "dropped); overlapping (partly merged before, merged again: should stay 0).",
                ("metric", "outcome")),
    CounterSpec("late_partials", "stream_guard_late_partials",
                "Window deltas for a window the owner had already closed because their source "
                "was idle (not counted in it).", ("metric",)),
)
"""`EngineStats` field → counter family. A field the engine does not have yet is exported empty."""

NOTIFIER_OUTCOMES = CounterSpec(
    "outcomes", "stream_guard_notifier_outcomes",
    "Notifier outcomes per route: sent, deduped, silenced, retried, failed; reason says why.",
    ("outcome", "route", "reason"),
)
"""Keyed (outcome, route, reason): the shape of `SlackNotifier.stats`, so both export alike."""

CONTROL_COUNTERS = (
    CounterSpec("answers", "stream_guard_feedback",
                "Analysts' answers on the control topic (Real issue / False alarm buttons), per "
                "metric and verdict; each worker reads the whole topic, so take max over workers.",
                ("metric", "verdict")),
    CounterSpec("invalid", "stream_guard_control_invalid",
                "Control-topic records refused (skipped) by the notifier's reader.", ("reason",)),
)
"""`ControlView` field -> counter family (alert/silences.py)."""

REPORT_OUTCOMES = ("merged", "duplicate", "overlapping")
"""What `WindowMerger.merge` says of a source report (the `outcome` of partial reports)."""

SCORE_BUCKETS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0, 25.0, 50.0)
"""Detector scores are z-like: rules warn at 4-4.5 and page at 7-8, so the buckets are dense
there and coarse in the tails."""

ALERT_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0,
)
"""Window close → alert on the alerts topic. The target is p99 <= 1 s: buckets at 0.75, 1 and
1.5 s tell "just met" from "just missed" in `histogram_quantile(0.99, ...)`."""

SHUTDOWN_TIMEOUT_S = 5.0
"""How long `Server.close` waits for the HTTP thread; it exits within one poll (0.5 s)."""


@dataclass
class Server:
    """The /metrics HTTP endpoint, served by prometheus-client on a daemon thread."""

    httpd: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(SHUTDOWN_TIMEOUT_S)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RuntimeMetrics:
    """Every metric of one worker, in its own registry (tests and several workers can coexist).

    Without a `registry`, a fresh one also gets the process, platform and GC collectors that
    prometheus-client's default registry would have had; a passed registry is the caller's.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self._stats_sources: list[Callable[[], Iterable[EngineStats]]] = []
        self._retired = EngineStats()
        self._expected = EngineStats()
        self._notifier_sources: list[Callable[[], Iterable[Mapping[Any, int]]]] = []
        self._outcomes: Counter[tuple[str, str, str]] = Counter()
        self._outcomes_lock = threading.Lock()
        registry.register(CounterTableCollector(ENGINE_COUNTERS, self._engine_stats, _field))
        registry.register(CounterTableCollector(
            (NOTIFIER_OUTCOMES,), self._notifier_counts, lambda _field, counter: counter))
        self._scores = Histogram(
            "stream_guard_detector_score", "Detector score of every point, per metric.",
            ["metric"], buckets=SCORE_BUCKETS, registry=registry)
        self._latency = Histogram(
            "stream_guard_alert_latency_seconds",
            "Wall time from a window's close to its alert on the alerts topic.",
            ["metric"], buckets=ALERT_LATENCY_BUCKETS, registry=registry)
        self._lag = Gauge(
            "stream_guard_processing_lag_seconds",
            "Wall clock minus the event time of the latest event consumed, per topic.",
            ["topic"], registry=registry)
        self._watermark = Gauge(
            "stream_guard_owner_watermark_seconds",
            "Event-time watermark of the metric's owner (Unix seconds): windows before it closed.",
            ["metric"], registry=registry)
        self._sources = Gauge(
            "stream_guard_source_partitions",
            "Source partitions by state: active (reporting) or idle (advanced by wall clock).",
            ["state"], registry=registry)
        self._business = BusinessGauges(registry)
        self._metrics: set[str] = set()
        self._views: list[Callable[[], Iterable[ControlView]]] = []
        registry.register(CounterTableCollector(
            CONTROL_COUNTERS, self._control_counts, lambda name, counts: counts[name]))

    # scrape-time counters ------------------------------------------------------------------
    def track_stats(self, stats: Callable[[], Iterable[EngineStats]]) -> None:
        """Export the counters of the engines `stats()` returns, summed, at every scrape."""
        self._stats_sources.append(stats)

    def retire(self, stats: EngineStats) -> None:
        """Keep the counts of an engine the worker drops (e.g. its partition was revoked), so
        counters never go back; stop returning it from the tracked callable at the same time."""
        for f in fields(EngineStats):
            fold(getattr(self._retired, f.name), getattr(stats, f.name))

    def track_notifier(self, stats: Callable[[], Iterable[Mapping[Any, int]]]) -> None:
        """Export notifier counters keyed (outcome, route, reason), like `SlackNotifier.stats`
        (sent, failed, retried); use `notifier_outcome` only for outcomes they do not count."""
        self._notifier_sources.append(stats)

    def expect(self, sources: Mapping[str, Iterable[str]], topics: Iterable[str]) -> None:
        """Export at 0 every label set that `sources` (metric -> the event topics it reads) and
        the event `topics` allow: the engine's counters and the detector-score and
        alert-latency histograms. Not `reason` (its values are open-ended), nor the gauges: a
        lag or watermark of 0 would be a false reading, they appear with their first value."""
        zero = self._expected
        for topic in topics:
            zero.events[topic] += 0
            zero.duplicates[topic] += 0
        for metric, read in sources.items():
            _expect_metric(zero, metric, read)
            self._scores.labels(metric)
            self._latency.labels(metric)
            self._business.expect(metric)
        self._metrics.update(sources)

    def track_control(self, views: Callable[[], Iterable[ControlView]]) -> None:
        """Export the feedback answers and refused records of the control views `views()`
        returns (the notifier's), summed; (metric, verdict) of every expected metric at 0."""
        self._views.append(views)

    def _control_counts(self) -> list[dict[str, Counter[Any]]]:
        answers: Counter[tuple[str, str]] = Counter(
            {(m, v): 0 for m in self._metrics for v in VERDICTS})
        invalid: Counter[str] = Counter({"invalid_control_record": 0} if self._views else {})
        for view in (v for source in self._views for v in source()):
            for (metric, verdict), n in snapshot(view.answers).items():
                answers[(metric if metric in self._metrics else "other", verdict)] += n
            fold(invalid, view.invalid)
        return [{"answers": answers, "invalid": invalid}]

    def _engine_stats(self) -> list[EngineStats]:
        return [self._expected, self._retired,
                *(s for source in self._stats_sources for s in source())]

    def _notifier_counts(self) -> list[Mapping[Any, int]]:
        with self._outcomes_lock:
            own = dict(self._outcomes)
        return [own, *(c for source in self._notifier_sources for c in source())]

    # direct observations ------------------------------------------------------------------
    def observe_score(self, metric: str, score: float) -> None:
        self._scores.labels(metric).observe(score)

    def observe(self, score: Score) -> None:
        """The engine's score callback: the score histogram and the business gauges."""
        self.observe_score(score.point.metric, score.score)
        self._business.observe(score)

    def observe_alerts(self, records: Iterable[AlertRecord]) -> None:
        """Alert records this worker published: open episodes per metric."""
        self._business.alerts(records)

    def observe_alert_latency(self, metric: str, seconds: float) -> None:
        self._latency.labels(metric).observe(seconds)

    def set_lag(self, topic: str, seconds: float) -> None:
        self._lag.labels(topic).set(seconds)

    def set_watermark(self, metric: str, event_time_ms: int) -> None:
        self._watermark.labels(metric).set(event_time_ms / 1000)

    def set_sources(self, active: int, idle: int) -> None:
        self._sources.labels("active").set(active)
        self._sources.labels("idle").set(idle)

    def notifier_outcome(self, route: str, outcome: str, reason: str = "") -> None:
        """One notifier outcome (called from the notifier's thread, hence the lock)."""
        with self._outcomes_lock:
            self._outcomes[(outcome, route, reason)] += 1

    # HTTP ---------------------------------------------------------------------------------
    def serve(self, port: int, host: str = "0.0.0.0") -> Server:
        """Serve /metrics over HTTP on a daemon thread; port 0 picks a free port."""
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        return Server(httpd, thread)


def _expect_metric(zero: EngineStats, metric: str, topics: Iterable[str]) -> None:
    """One metric's label sets at 0 in `zero`."""
    for topic in topics:
        zero.late[(topic, metric)] += 0
    for counter in (zero.dropped_series, zero.folded_series, zero.admitted_series,
                    zero.evicted_series, zero.windows_closed,
                    zero.skipped_windows, zero.isolated_windows, zero.points,
                    zero.anomalous_points, zero.late_partials):
        counter[metric] += 0
    for severity in get_args(AlertSeverity):
        for status in get_args(AlertStatus):
            zero.alerts[(metric, severity, status)] += 0
    for outcome in REPORT_OUTCOMES:
        zero.reports[(metric, outcome)] += 0


def _field(name: str, stats: EngineStats) -> Mapping[Any, int] | None:
    counter: Mapping[Any, int] | None = getattr(stats, name, None)
    return counter
