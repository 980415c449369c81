"""SlackSink against the fake Slack server: requests, error classification, secrets."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient

from stream_guard.errors import ConfigError, PermanentSinkError, RetryableSinkError
from stream_guard.sinks.slack import SlackSettings, SlackSink
from stream_guard.sinks.slack_blocks import SlackMessage
from tests.fakes import slack_fixtures
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack, Reply

# The fixtures, bound here so this module runs with or without them in conftest.py.
fake_slack = slack_fixtures.fake_slack
slack_sink = slack_fixtures.slack_sink

MESSAGE = SlackMessage("fallback", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}])


def test_post_sends_token_blocks_and_returns_channel_id_and_ts(
    fake_slack: FakeSlack, slack_sink: SlackSink
) -> None:
    posted = slack_sink.post("#alerts", MESSAGE)

    [call] = fake_slack.calls
    assert call.method == "chat.postMessage"
    assert call.headers["Authorization"] == f"Bearer {FAKE_TOKEN}"
    assert call.body["channel"] == "#alerts"
    assert call.body["text"] == "fallback"
    assert call.body["blocks"] == MESSAGE.blocks
    assert call.body["unfurl_links"] is False
    assert "thread_ts" not in call.body
    assert posted.channel == FakeSlack.channel_id("#alerts")
    assert posted.ts


def test_reply_and_broadcast_and_update(fake_slack: FakeSlack, slack_sink: SlackSink) -> None:
    parent = slack_sink.post("#alerts", MESSAGE)
    slack_sink.post(parent.channel, MESSAGE, thread_ts=parent.ts, broadcast=True)
    slack_sink.update(parent.channel, parent.ts, MESSAGE)

    _, reply, update = fake_slack.calls
    assert reply.body["thread_ts"] == parent.ts
    assert reply.body["reply_broadcast"] is True
    assert (update.method, update.body["channel"], update.body["ts"]) == (
        "chat.update",
        parent.channel,
        parent.ts,
    )


def test_rate_limit_is_retryable_with_retry_after(
    fake_slack: FakeSlack, slack_sink: SlackSink
) -> None:
    fake_slack.enqueue(Reply.rate_limited(retry_after=7))
    with pytest.raises(RetryableSinkError) as info:
        slack_sink.post("#alerts", MESSAGE)
    assert info.value.retry_after == 7.0
    assert "ratelimited" in str(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(
    fake_slack: FakeSlack, slack_sink: SlackSink, status: int
) -> None:
    fake_slack.enqueue(Reply.server_error(status))
    with pytest.raises(RetryableSinkError, match=f"http_{status}") as info:
        slack_sink.post("#alerts", MESSAGE)
    assert info.value.retry_after is None


def test_slow_response_times_out_as_retryable(fake_slack: FakeSlack, slack_sink: SlackSink) -> None:
    fake_slack.enqueue(Reply.slow(delay_s=5.0))  # released at teardown; the client waits 1 s
    with pytest.raises(RetryableSinkError, match=r"chat\.postMessage to #alerts"):
        slack_sink.post("#alerts", MESSAGE)


def test_connection_refused_is_retryable() -> None:
    with FakeSlack() as fake:
        base_url = fake.base_url
    sink = SlackSink(WebClient(token=FAKE_TOKEN, base_url=base_url, retry_handlers=[]))
    with pytest.raises(RetryableSinkError):
        sink.post("#alerts", MESSAGE)


@pytest.mark.parametrize(
    "error",
    ["invalid_auth", "channel_not_found", "not_in_channel", "is_archived", "invalid_blocks"],
)
def test_slack_errors_are_permanent(
    fake_slack: FakeSlack, slack_sink: SlackSink, error: str
) -> None:
    fake_slack.enqueue(Reply.slack_error(error))
    with pytest.raises(PermanentSinkError, match=error):
        slack_sink.post("#alerts", MESSAGE)


def test_wrong_token_is_invalid_auth(fake_slack: FakeSlack) -> None:
    sink = SlackSink(WebClient(token="xoxb-other", base_url=fake_slack.base_url, retry_handlers=[]))
    with pytest.raises(PermanentSinkError, match="invalid_auth"):
        sink.post("#alerts", MESSAGE)


def test_settings_from_env_builds_a_client_on_the_base_url(fake_slack: FakeSlack) -> None:
    settings = SlackSettings.from_env(
        {
            "SLACK_BOT_TOKEN": FAKE_TOKEN,
            "SLACK_SIGNING_SECRET": "signing-secret-value",
            "STREAM_GUARD_SLACK_BASE_URL": fake_slack.base_url,
        }
    )
    sink = SlackSink.from_settings(settings, timeout=1)
    sink.post("#alerts", MESSAGE)
    assert fake_slack.methods() == ["chat.postMessage"]
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": "t"}).base_url == "https://slack.com/api/"


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackSettings.from_env({})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SLACK_BOT_TOKEN", " "),
        ("SLACK_BOT_TOKEN", "\t\n"),
        ("SLACK_BOT_TOKEN", "xoxb-secret-value\n"),
        ("SLACK_BOT_TOKEN", "xoxb-secret value"),
        ("SLACK_SIGNING_SECRET", "   "),
        ("SLACK_SIGNING_SECRET", "signing-secret-value\r\n"),
    ],
)
def test_blank_or_spaced_secrets_are_refused_naming_the_variable(variable: str, value: str) -> None:
    environ = {"SLACK_BOT_TOKEN": "t", variable: value}
    with pytest.raises(ConfigError, match=variable) as info:
        SlackSettings.from_env(environ)
    if value.strip():  # the value itself is never echoed
        assert value.strip() not in str(info.value)


def test_an_empty_signing_secret_is_unset() -> None:
    """docker-compose passes ${SLACK_SIGNING_SECRET:-}: empty means no buttons, not an error."""
    assert (
        SlackSettings.from_env({"SLACK_BOT_TOKEN": "t", "SLACK_SIGNING_SECRET": ""}).signing_secret
        is None
    )


def test_bad_base_url_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="STREAM_GUARD_SLACK_BASE_URL"):
        SlackSettings.from_env({"SLACK_BOT_TOKEN": "t", "STREAM_GUARD_SLACK_BASE_URL": "nope"})


def test_secrets_never_in_reprs_errors_or_logs(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "signing-secret-value"
    settings = SlackSettings(
        bot_token=SecretStr(FAKE_TOKEN),
        signing_secret=SecretStr(secret),
        base_url=fake_slack.base_url,
    )
    sink = SlackSink.from_settings(settings, timeout=1)
    caplog.set_level(logging.DEBUG)  # slack-sdk logs requests at debug level
    sink.post("#alerts", MESSAGE)
    fake_slack.enqueue(Reply.slack_error("invalid_auth"), Reply.server_error())
    errors = []
    for _ in range(2):
        with pytest.raises(Exception) as info:
            sink.post("#alerts", MESSAGE)
        errors.append(info.value)

    visible = [repr(settings), str(settings), repr(sink), caplog.text]
    visible += [f"{e!s} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors]
    for text in visible:
        assert FAKE_TOKEN not in text
        assert secret not in text
    assert "chat.postMessage" in caplog.text  # the debug log was really captured
