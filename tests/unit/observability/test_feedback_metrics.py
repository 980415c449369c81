"""Feedback counters on /metrics: per (metric, verdict), bounded by the configured metrics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stream_guard.alert.silences import ControlView, Feedback
from stream_guard.errors import InvalidEvent
from stream_guard.observability import RuntimeMetrics
from tests.unit.observability.conftest import Samples, value


def test_feedback_counters_are_per_metric_and_verdict_bounded(
    metrics: RuntimeMetrics, scrape: Callable[[], Samples]
) -> None:
    metrics.expect({"gmv": ["orders"], "complaint_rate": ["orders"]}, ["orders"])
    view = ControlView()
    metrics.track_control(lambda: [view])
    assert value(scrape(), "stream_guard_feedback_total", metric="gmv", verdict="real") == 0
    for i, metric in enumerate(["gmv", "gmv", "made-up-by-a-button", None]):
        view.apply(Feedback(episode_id=f"e{i}", verdict="real", metric=metric, user_id="U1",
                            at_ms=i).to_record())
    view.apply(Feedback(episode_id="e0", verdict="false_alarm", metric="gmv", user_id="U1",
                        at_ms=9).to_record())
    for bad in ({"kind": "feedback"}, {"kind": "nonsense"}):
        with pytest.raises(InvalidEvent):
            view.apply(bad)
    samples = scrape()
    assert value(samples, "stream_guard_feedback_total", metric="gmv", verdict="real") == 2
    assert value(samples, "stream_guard_feedback_total", metric="gmv", verdict="false_alarm") == 1
    assert value(samples, "stream_guard_feedback_total", metric="other", verdict="real") == 2
    assert value(samples, "stream_guard_feedback_total", metric="complaint_rate",
                 verdict="real") == 0
    assert {dict(k[1])["metric"] for k in samples if k[0] == "stream_guard_feedback_total"} == {
        "gmv", "complaint_rate", "other"}
    assert value(samples, "stream_guard_control_invalid_total",
                 reason="invalid_control_record") == 2
