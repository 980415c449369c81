"""Business gauges on /metrics: one series per metric, exact values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stream_guard.observability import RuntimeMetrics
from stream_guard.types import AlertRecord, MetricPoint, Score
from tests.unit.observability.conftest import Samples, value

FIXTURE = Path(__file__).parents[1] / "alert" / "fixtures" / "gmv_episode.jsonl"
H = 3_600_000


def score(slice_: tuple[tuple[str, str], ...], start: int, v: float, anomalous: bool) -> Score:
    point = MetricPoint("gmv", slice_, start, start + H, v, v, 10.0)
    return Score(point, 6.0 if anomalous else 0.5, 100.0, anomalous, "up")


def test_gauges_follow_the_platform_slice_and_the_latest_window(
    metrics: RuntimeMetrics, scrape: Callable[[], Samples]
) -> None:
    metrics.expect({"gmv": ["orders"]}, ["orders"])
    assert value(scrape(), "stream_guard_open_episodes", metric="gmv") == 0
    for i in range(50):  # many slices, one series per metric
        metrics.observe(score((("seller", f"s{i}"),), 0, float(i), anomalous=i < 3))
    metrics.observe(score((), 0, 140.0, anomalous=True))
    metrics.observe(score((("region", "EU"),), H, 5.0, anomalous=False))  # the next window
    samples = scrape()
    assert value(samples, "stream_guard_metric_value", metric="gmv") == 140.0
    assert value(samples, "stream_guard_metric_expected", metric="gmv") == 100.0
    assert value(samples, "stream_guard_metric_score", metric="gmv") == 6.0
    assert value(samples, "stream_guard_metric_anomalous_slices", metric="gmv") == 0
    business = [k for k in samples if k[0].startswith("stream_guard_metric_")]
    assert len(business) == 4  # value, expected, score, anomalous slices: gmv only
    assert value(samples, "stream_guard_detector_score_count", metric="gmv") == 52


def test_open_episodes_count_firing_until_resolved(
    metrics: RuntimeMetrics, scrape: Callable[[], Samples]
) -> None:
    records = [AlertRecord.parse(line) for line in FIXTURE.read_text().splitlines()]
    other = AlertRecord.parse({**records[0].to_dict(), "episode_id": "gmv-2"})
    metrics.observe_alerts([records[0], other, records[1]])
    assert value(scrape(), "stream_guard_open_episodes", metric="gmv") == 2
    metrics.observe_alerts([records[3]])  # resolved
    assert value(scrape(), "stream_guard_open_episodes", metric="gmv") == 1
