"""The notifier against the fake Slack server, read as timelines: records at t → Slack calls."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from stream_guard.alert.nflog import Reason
from stream_guard.alert.notify import Notifier, RetryPolicy
from stream_guard.config.routes import load_routes
from stream_guard.errors import InvalidEvent
from stream_guard.sinks.slack import SlackSink
from stream_guard.sinks.slack_integration import SlackIntegration
from stream_guard.types import AlertRecord
from tests.fakes import slack_fixtures
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack, Reply

# The fixtures, bound here so this module runs with or without them in conftest.py.
fake_slack = slack_fixtures.fake_slack

ROUTES = load_routes(Path(__file__).parents[3] / "alert_rules" / "routes.yaml")
EPISODE = (Path(__file__).parent / "fixtures" / "gmv_episode.jsonl").read_text().splitlines()
MIN = 60_000
T0 = 1_772_633_700_000  # 2026-03-04T14:15:00Z, the end of the first window
COMMERCE = FakeSlack.channel_id("#commerce-oncall")
PAGE = FakeSlack.channel_id("#trust-safety-page")
TEAM = FakeSlack.channel_id("#trust-safety-alerts")


def gmv(line: int, **overrides: Any) -> dict[str, Any]:
    return {**json.loads(EPISODE[line]), **overrides}


def complaints(sequence: int, severity: str, status: str = "firing") -> dict[str, Any]:
    return gmv(
        0,
        metric="complaint_rate",
        episode_id="complaint_rate-20260304T1400Z-77aa",
        route="default",
        sequence=sequence,
        severity=severity,
        status=status,
        reason="resolved" if status == "resolved" else "new",
    )


class Harness:
    """A notifier on the fake Slack, with a plain dict as its store and sleeps recorded."""

    def __init__(self, fake: FakeSlack, store: dict[str, Any] | None = None) -> None:
        self.fake = fake
        self.store: dict[str, Any] = {} if store is None else store
        self.sleeps: list[float] = []
        client = WebClient(token=FAKE_TOKEN, base_url=fake.base_url,  # type: ignore[arg-type]
                           timeout=slack_fixtures.CLIENT_TIMEOUT_S, retry_handlers=[])
        self.notifier = Notifier(
            ROUTES, SlackIntegration(SlackSink(client)), self.store, sleep=self.sleeps.append
        )
        self._seen = 0

    def push(self, record: dict[str, Any], at_ms: int) -> list[tuple[str, ...]]:
        """Notify one record at `at_ms`; return the Slack calls it caused, summarised."""
        self.outcomes = self.notifier.notify(AlertRecord.parse(record), at_ms)
        return self._calls()

    def remind(self, record: dict[str, Any], at_ms: int) -> list[tuple[str, ...]]:
        """The reminders due at `at_ms` for the episode whose latest update is `record`."""
        self.outcomes = self.notifier.remind(AlertRecord.parse(record), at_ms)
        return self._calls()

    def _calls(self) -> list[tuple[str, ...]]:
        calls = self.fake.calls[self._seen :]
        self._seen += len(calls)
        return [summary(call.method, call.body) for call in calls]


def summary(method: str, body: dict[str, Any]) -> tuple[str, ...]:
    if method == "chat.update":
        return ("update", body["channel"], body["ts"])
    if "thread_ts" in body:
        kind = "broadcast" if body.get("reply_broadcast") else "reply"
        return (kind, body["channel"], body["thread_ts"])
    return ("post", body["channel"])


def parent_ts(h: Harness, route: str, episode: str = "gmv-20260304T1400Z-3f9a0c1b") -> str:
    [entry] = [v for k, v in h.store.items() if k.startswith(f"{route}|") and episode in k]
    return str(entry["ts"])


def test_episode_timeline(fake_slack: FakeSlack) -> None:
    h = Harness(fake_slack)
    assert h.push(gmv(0), T0) == [("post", "#commerce-oncall")]
    p = parent_ts(h, "commerce-oncall")
    assert h.push(gmv(1), T0 + 15 * MIN) == []  # same severity and slices, repeat not due
    assert h.push(gmv(2), T0 + 30 * MIN) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
    assert h.push(gmv(3), T0 + 90 * MIN) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
    assert h.push(gmv(3, sequence=4), T0 + 95 * MIN) == []  # the thread is closed
    resolved_parent = fake_slack.calls[-2].body
    assert "RESOLVED" in resolved_parent["text"]
    actions = [b for b in resolved_parent["blocks"] if b["type"] == "actions"]
    assert [len(b["elements"]) for b in actions] == [2]  # Real issue / False alarm only
    assert "Resolved after 1 hour 45 minutes" in json.dumps(fake_slack.calls[-1].body)
    assert h.notifier.stats["sent", "commerce-oncall", "resolved"] == 1


def test_a_reminder_is_broadcast_once_per_route_interval(fake_slack: FakeSlack) -> None:
    """commerce-oncall reminds every 2 h, counted from the last notification; an update with
    nothing new never reminds, however late it comes."""
    h = Harness(fake_slack)
    h.push(gmv(0), T0)
    p = parent_ts(h, "commerce-oncall")
    assert h.push(gmv(1), T0 + 119 * MIN) == []
    assert h.push(gmv(1, sequence=2), T0 + 121 * MIN) == []
    assert h.remind(gmv(1), T0 + 119 * MIN) == []
    assert h.notifier.reminders_due(T0 + 119 * MIN) == set()
    assert h.notifier.reminders_due(T0 + 120 * MIN) == {gmv(1)["episode_id"]}
    reminder = [("update", COMMERCE, p), ("broadcast", COMMERCE, p)]
    assert h.remind(gmv(1), T0 + 120 * MIN) == reminder
    assert h.outcomes[0].reason is Reason.REPEAT_DUE
    assert "Still firing (2 hours since the first notification)" in json.dumps(
        fake_slack.calls[-1].body)
    assert h.remind(gmv(1), T0 + 239 * MIN) == []
    assert h.remind(gmv(1), T0 + 240 * MIN) == reminder
    assert h.push(gmv(3), T0 + 250 * MIN) == [("update", COMMERCE, p), ("reply", COMMERCE, p)]
    assert h.remind(gmv(3), T0 + 999 * MIN) == []  # resolved: the thread is closed


def test_a_reminder_reaches_every_route_with_a_thread_by_its_own_interval(
    fake_slack: FakeSlack,
) -> None:
    """A critical complaint_rate episode pages (1 h) and reaches the team channel (inherits the
    root's 4 h): each thread is reminded by its own route's interval."""
    h = Harness(fake_slack)
    assert len(h.push(complaints(0, "critical"), T0)) == 2
    assert h.remind(complaints(0, "critical"), T0 + 60 * MIN) == [
        ("update", PAGE, parent_ts(h, "trust-safety-page", "complaint_rate")),
        ("broadcast", PAGE, parent_ts(h, "trust-safety-page", "complaint_rate"))]
    assert [c[1] for c in h.remind(complaints(0, "critical"), T0 + 240 * MIN)] == [
        PAGE, PAGE, TEAM, TEAM]


def test_redelivered_records_send_nothing(fake_slack: FakeSlack) -> None:
    h = Harness(fake_slack)
    h.push(gmv(0), T0)
    h.push(gmv(2), T0 + 30 * MIN)
    assert h.push(gmv(0), T0 + 31 * MIN) == []
    assert h.push(gmv(2), T0 + 32 * MIN) == []
    assert h.notifier.stats["deduped", "commerce-oncall", ""] >= 2


def test_restarted_notifier_continues_the_thread(fake_slack: FakeSlack) -> None:
    store: dict[str, Any] = {}
    first = Harness(fake_slack, store)
    first.push(gmv(0), T0)
    p = parent_ts(first, "commerce-oncall")

    restarted = Harness(fake_slack, store)  # new notifier, new client, same store
    restarted._seen = len(fake_slack.calls)
    assert restarted.push(gmv(0), T0 + MIN) == []  # the record replayed after the crash
    assert restarted.push(gmv(2), T0 + 30 * MIN) == [
        ("update", COMMERCE, p),
        ("reply", COMMERCE, p),
    ]
    assert [c.method for c in fake_slack.calls].count("chat.postMessage") == 2  # parent + reply


def test_critical_pages_and_the_page_hears_the_resolution(fake_slack: FakeSlack) -> None:
    h = Harness(fake_slack)
    assert h.push(complaints(0, "warning"), T0) == [("post", "#trust-safety-alerts")]
    team = parent_ts(h, "trust-safety-team", "complaint_rate")
    assert h.push(complaints(1, "critical"), T0 + 15 * MIN) == [
        ("post", "#trust-safety-page"),
        ("update", TEAM, team),
        ("reply", TEAM, team),
    ]
    page = parent_ts(h, "trust-safety-page", "complaint_rate")
    # Resolved with the severity back at warning: the page no longer matches, but has a thread.
    assert h.push(complaints(2, "warning", "resolved"), T0 + 60 * MIN) == [
        ("update", PAGE, page),
        ("reply", PAGE, page),
        ("update", TEAM, team),
        ("reply", TEAM, team),
    ]


def test_retries_honour_retry_after_then_back_off(fake_slack: FakeSlack) -> None:
    h = Harness(fake_slack)
    fake_slack.enqueue(Reply.rate_limited(retry_after=3), Reply.server_error(), Reply.slow())
    calls = h.push(gmv(0), T0)
    assert calls == [("post", "#commerce-oncall")] * 4
    assert h.sleeps == [3.0, 2.0, 4.0]  # Retry-After as given, then 1 s doubling from attempt 2
    assert h.notifier.stats["retried", "commerce-oncall", ""] == 3
    assert h.outcomes[0].delivered
    assert len(h.store) == 1  # recorded once, after Slack accepted


def test_exhausted_retries_record_nothing_and_the_next_update_tries_again(
    fake_slack: FakeSlack,
) -> None:
    h = Harness(fake_slack)
    h.notifier.policy = RetryPolicy(max_attempts=3, base_delay_s=1, max_delay_s=1.5)
    fake_slack.enqueue(*[Reply.server_error()] * 3)
    assert len(h.push(gmv(0), T0)) == 3
    assert h.sleeps == [1.0, 1.5]
    assert not h.outcomes[0].delivered and "http_500" in (h.outcomes[0].error or "")
    assert h.store == {}
    assert h.notifier.stats["failed", "commerce-oncall", "retryable"] == 1
    assert h.push(gmv(0), T0 + MIN) == [("post", "#commerce-oncall")]


def test_too_long_retry_after_gives_up_instead_of_stalling(fake_slack: FakeSlack) -> None:
    h = Harness(fake_slack)
    fake_slack.enqueue(Reply.rate_limited(retry_after=3600))
    h.push(gmv(0), T0)
    assert h.sleeps == [] and not h.outcomes[0].delivered


def test_permanent_error_is_logged_once_counted_and_spares_other_routes(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(fake_slack)
    fake_slack.fail_channel("#trust-safety-page", "not_in_channel")
    caplog.set_level(logging.DEBUG, logger="stream_guard")
    assert h.push(complaints(0, "critical"), T0) == [
        ("post", "#trust-safety-page"),
        ("post", "#trust-safety-alerts"),
    ]
    h.push(complaints(1, "critical", "resolved"), T0 + MIN)
    h.push(complaints(0, "critical") | {"episode_id": "complaint_rate-other"}, T0)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "not_in_channel" in errors[0].getMessage()
    assert h.sleeps == []  # never retried
    assert h.notifier.stats["failed", "trust-safety-page", "permanent"] == 2
    assert h.notifier.stats["sent", "trust-safety-team", "first"] == 2
    assert h.notifier.stats["sent", "trust-safety-team", "resolved"] == 1


def test_injected_slice_value_reaches_slack_escaped(fake_slack: FakeSlack) -> None:
    evil = "<!channel> <https://evil|click>"
    h = Harness(fake_slack)
    h.push(gmv(0, slice={"seller_id": evil}, firing_slices=[], hints=[]), T0)
    body = json.dumps(fake_slack.calls[0].body)
    # escaped, and the URL broken by a word joiner so no client turns it into a link
    assert "seller_id=&lt;!channel&gt; &lt;https:\\u2060//evil|click&gt;" in body
    assert "<!channel>" not in body and "<https://evil" not in body


def test_unknown_route_falls_back_to_the_root(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(fake_slack)
    assert h.push(gmv(0, route="gone"), T0) == [("post", "#commerce-oncall")]
    assert "unknown route 'gone'" in caplog.text


def test_malformed_record_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent) as info:
        AlertRecord.parse(gmv(0, status="exploded", window_end="yesterday"))
    assert info.value.reason == "invalid_alert_record"
    assert "status" in info.value.detail and "window_end" in info.value.detail
