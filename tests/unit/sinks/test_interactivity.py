"""The interactivity endpoint: signed, fresh, never replayed; buttons parsed into actions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from stream_guard.clock import ManualClock
from stream_guard.sinks.interactivity import AlertAction, interactivity_handler
from stream_guard.sinks.slack_blocks import ACK_ACTION_ID, SNOOZE_ACTION_ID

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW_S = 1_772_633_700
PATH = "/slack/interactivity"


def payload(action_id: str = ACK_ACTION_ID, episode: str = "gmv-20260304T1400Z-3f9a0c1b") -> bytes:
    body = {
        "type": "block_actions",
        "user": {"id": "U0ANALYST", "username": "ana"},
        "channel": {"id": "C4CCCAC3F"},
        "container": {"type": "message", "message_ts": "1772632800.000200"},
        "actions": [{"action_id": action_id, "value": episode, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(body)}).encode()


def signed(body: bytes, ts: int = NOW_S, secret: str = SECRET) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }


Scenario = Callable[[TestClient[web.Request, web.Application], ManualClock], Awaitable[None]]


def run(scenario: Scenario) -> list[AlertAction]:
    """Serve the handler on a real local port, run `scenario` against it, return the actions."""
    received: list[AlertAction] = []

    async def on_action(action: AlertAction) -> None:
        received.append(action)

    async def main() -> None:
        clock = ManualClock(NOW_S * 1000)
        app = web.Application()
        app.router.add_post(PATH, interactivity_handler(SecretStr(SECRET), clock, on_action))
        async with TestClient(TestServer(app)) as client:
            await scenario(client, clock)

    asyncio.run(main())
    return received


def test_valid_request_reaches_the_callback() -> None:
    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        for action_id in (ACK_ACTION_ID, SNOOZE_ACTION_ID):
            body = payload(action_id)
            resp = await client.post(PATH, data=body, headers=signed(body))
            assert resp.status == 200

    ack, snooze = run(scenario)
    assert ack == AlertAction(
        action="acknowledge",
        episode_id="gmv-20260304T1400Z-3f9a0c1b",
        user_id="U0ANALYST",
        user_name="ana",
        channel_id="C4CCCAC3F",
        message_ts="1772632800.000200",
        at_ms=NOW_S * 1000,
    )
    assert snooze.action == "snooze_1h"


@pytest.mark.parametrize(
    "headers",
    [
        signed(payload(), secret="not-the-secret"),
        {**signed(payload()), "X-Slack-Signature": "v0=deadbeef"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {**signed(payload()), "X-Slack-Request-Timestamp": "soon"},
        signed(payload(), ts=NOW_S - 301),  # stale
        signed(payload(), ts=NOW_S + 301),  # from the future
    ],
    ids=["wrong-secret", "bad-signature", "unsigned", "bad-timestamp", "stale", "future"],
)
def test_bad_or_stale_signatures_are_refused(headers: dict[str, str]) -> None:
    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        resp = await client.post(PATH, data=payload(), headers=headers)
        assert resp.status == 401

    assert run(scenario) == []


def test_tampered_body_is_refused() -> None:
    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        headers = signed(payload(SNOOZE_ACTION_ID))
        resp = await client.post(PATH, data=payload(ACK_ACTION_ID), headers=headers)
        assert resp.status == 401

    assert run(scenario) == []


def test_replayed_request_is_refused_within_the_window() -> None:
    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        body = payload()
        headers = signed(body)
        assert (await client.post(PATH, data=body, headers=headers)).status == 200
        clock.advance(120_000)
        assert (await client.post(PATH, data=body, headers=headers)).status == 401
        clock.advance(200_000)  # past the window: now stale, still refused
        assert (await client.post(PATH, data=body, headers=headers)).status == 401
        fresh = signed(body, ts=NOW_S + 320)  # a new press of the same button is fine
        assert (await client.post(PATH, data=body, headers=fresh)).status == 200

    assert len(run(scenario)) == 2


def test_malformed_and_foreign_payloads(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        junk = b"payload=%7Bnot-json"
        assert (await client.post(PATH, data=junk, headers=signed(junk))).status == 400
        other = payload(action_id="someone_elses_button")
        assert (await client.post(PATH, data=other, headers=signed(other))).status == 200

    caplog.set_level(logging.DEBUG)
    assert run(scenario) == []
    assert SECRET not in caplog.text
