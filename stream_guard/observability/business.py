"""Business gauges: what a metric is doing, for the business dashboard (deploy/grafana).

Set from the engine's score callback (every point of a closed window) and from the alert
records the owner publishes. Cardinality is bounded by configuration: one series per configured
metric and gauge, for the platform slice only (a slice value never becomes a label).

>>> from prometheus_client import CollectorRegistry
>>> from stream_guard.types import MetricPoint, Score
>>> registry = CollectorRegistry()
>>> gauges = BusinessGauges(registry)
>>> point = MetricPoint("gmv", (), 0, 3_600_000, 120.0, 120.0, 10.0)
>>> gauges.observe(Score(point, 5.0, 100.0, True, "up"))
>>> registry.get_sample_value("stream_guard_metric_value", {"metric": "gmv"})
120.0
>>> registry.get_sample_value("stream_guard_metric_anomalous_slices", {"metric": "gmv"})
1.0
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from stream_guard.types import AlertRecord, Score

__all__ = ["MAX_OPEN_TRACKED", "BusinessGauges"]

MAX_OPEN_TRACKED = 64
"""Open episodes remembered per metric (the engine keeps at most 8 open per metric; the bound
only matters if resolutions were lost, e.g. published by another worker after a rebalance)."""


class BusinessGauges:
    """Per metric: the platform's value, expected value and score in its latest closed window,
    the slices anomalous in that window, and the episodes open (firing, not yet resolved)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ["metric"], registry=registry)

        self._value = gauge("stream_guard_metric_value",
                            "The metric's platform-wide value in its latest closed window.")
        self._expected = gauge("stream_guard_metric_expected",
                               "The detector's expected platform-wide value for that window.")
        self._score = gauge("stream_guard_metric_score",
                            "The detector's score of the platform-wide value in that window.")
        self._anomalous = gauge("stream_guard_metric_anomalous_slices",
                                "Slices (platform included) anomalous in the latest window.")
        self._open = gauge("stream_guard_open_episodes",
                           "Alert episodes of the metric this worker published as firing and "
                           "not yet as resolved.")
        self._window: dict[str, int] = {}  # metric -> start of the window being counted
        self._count: dict[str, int] = {}
        self._episodes: dict[str, dict[str, None]] = {}  # metric -> open episode ids, in order

    def expect(self, metric: str) -> None:
        """0 open episodes and 0 anomalous slices from the start (true readings, unlike a
        value or an expectation of 0)."""
        self._anomalous.labels(metric).set(0)
        self._open.labels(metric).set(len(self._episodes.get(metric, {})))

    def observe(self, s: Score) -> None:
        metric, start = s.point.metric, s.point.window_start_ms
        if self._window.get(metric) != start:
            self._window[metric], self._count[metric] = start, 0
        if s.anomalous:
            self._count[metric] += 1
        self._anomalous.labels(metric).set(self._count[metric])
        if s.point.slice:
            return
        self._value.labels(metric).set(s.point.value)
        self._score.labels(metric).set(s.score)
        if s.expected is not None:
            self._expected.labels(metric).set(s.expected)

    def alerts(self, records: Iterable[AlertRecord]) -> None:
        for r in records:
            open_ = self._episodes.setdefault(r.metric, {})
            if r.status == "resolved":
                open_.pop(r.episode_id, None)
            elif r.status == "firing":
                open_[r.episode_id] = None
                while len(open_) > MAX_OPEN_TRACKED:
                    del open_[next(iter(open_))]
            self._open.labels(r.metric).set(len(open_))
