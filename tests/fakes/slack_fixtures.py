"""pytest fixtures around the fake Slack server; import them into a conftest.py.

from tests.fakes.slack_fixtures import fake_slack, slack_sink  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from stream_guard.sinks.slack import SlackSink
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack

__all__ = ["FAKE_TOKEN", "fake_slack", "slack_sink"]

CLIENT_TIMEOUT_S = 0.1  # short, so the slow-response test times out quickly


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started fake Slack Web API that only accepts FAKE_TOKEN; stopped after the test."""
    with FakeSlack(token=FAKE_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack_sink(fake_slack: FakeSlack) -> SlackSink:
    """A SlackSink whose WebClient talks to `fake_slack`, without slack-sdk's own retries."""
    client = WebClient(
        token=FAKE_TOKEN,
        base_url=fake_slack.base_url,
        timeout=CLIENT_TIMEOUT_S,  # type: ignore[arg-type]
        retry_handlers=[],
    )
    return SlackSink(client)
