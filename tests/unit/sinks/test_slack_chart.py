"""The chart in a new thread: rendered off the caller's thread within a budget, uploaded with
files_upload_v2 to the local Slack stand-in after the parent, and never an error of `open`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from stream_guard.sinks.chart import PNG_SIGNATURE, render_chart
from stream_guard.sinks.slack import SlackSink
from stream_guard.sinks.slack_integration import Charts, SlackIntegration
from stream_guard.types import AlertRecord
from tests.fakes import slack_fixtures
from tests.fakes.slack_server import FakeSlack, Reply

fake_slack = slack_fixtures.fake_slack
slack_sink = slack_fixtures.slack_sink

EPISODE = Path(__file__).parents[1] / "alert" / "fixtures" / "gmv_episode.jsonl"
SERIES = [{"end": f"2026-03-04T{h:02d}:{m:02d}:00Z", "actual": 40_000.0 - (25_000 if h >= 14
                                                                           else 0),
           "expected": 41_000.0} for h in range(15) for m in (0, 15, 30, 45)]


def _alert(series: list[dict[str, object]] = SERIES) -> AlertRecord:
    base = json.loads(EPISODE.read_text().splitlines()[0])
    return AlertRecord.parse({**base, "series": series, "unit": "USD"})


def test_the_chart_is_a_png_of_the_series() -> None:
    png = render_chart(_alert())
    assert png is not None and png.startswith(PNG_SIGNATURE) and len(png) > 5_000
    assert render_chart(_alert([])) is None


def _height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")  # IHDR: width, then height


def test_a_slice_episode_gets_the_whole_metric_above_its_slice() -> None:
    alert = AlertRecord.parse({**_alert().to_dict(), "series": SERIES[-3:],
                               "metric_series": SERIES})
    two, one = render_chart(alert), render_chart(_alert())
    assert two is not None and one is not None and two.startswith(PNG_SIGNATURE)
    assert _height(two) > 1.5 * _height(one)


def test_open_posts_the_parent_then_uploads_the_chart_into_its_thread(
    fake_slack: FakeSlack, slack_sink: SlackSink
) -> None:
    integration = SlackIntegration(slack_sink)
    thread = integration.open("#alerts", _alert(), 0)
    assert fake_slack.methods() == ["chat.postMessage", "files.getUploadURLExternal",
                                    "files.completeUploadExternal"]
    [shared] = fake_slack.shared_files()
    assert (shared.channel, shared.thread_ts) == (thread.channel, thread.ts)
    assert shared.data.startswith(PNG_SIGNATURE) and shared.title.startswith("gmv (USD)")
    assert integration.charts.counts == {"uploaded": 1}


def test_no_series_no_upload(fake_slack: FakeSlack, slack_sink: SlackSink) -> None:
    SlackIntegration(slack_sink).open("#alerts", _alert([]), 0)
    assert fake_slack.methods() == ["chat.postMessage"]


def test_a_slow_chart_is_skipped_without_delaying_the_parent(
    fake_slack: FakeSlack, slack_sink: SlackSink
) -> None:
    release = threading.Event()

    def stuck(alert: AlertRecord) -> bytes:
        release.wait(10)
        return b""

    integration = SlackIntegration(slack_sink, charts=Charts(stuck, budget_s=0.2))
    started = time.monotonic()
    integration.open("#alerts", _alert(), 0)
    integration.open("#alerts", _alert(), 0)  # the first render still runs: busy, no wait
    took = time.monotonic() - started
    release.set()
    assert took < 1.0
    assert fake_slack.methods() == ["chat.postMessage", "chat.postMessage"]
    assert integration.charts.counts == {"skipped_slow": 1, "skipped_busy": 1}


def test_a_failing_chart_or_upload_is_counted_never_raised(
    fake_slack: FakeSlack, slack_sink: SlackSink
) -> None:
    def broken(alert: AlertRecord) -> bytes:
        raise RuntimeError("no fonts")

    integration = SlackIntegration(slack_sink, charts=Charts(broken))
    integration.open("#alerts", _alert(), 0)
    fake_slack.enqueue(Reply.slack_error("not_allowed", method="files.getUploadURLExternal"))
    integration.charts.render = render_chart
    integration.open("#alerts", _alert(), 0)
    assert integration.charts.counts == {"failed_render": 1, "failed_upload": 1}
    assert fake_slack.methods().count("chat.postMessage") == 2
    assert fake_slack.shared_files() == []
