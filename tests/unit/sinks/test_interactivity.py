"""The interactivity endpoint: signed, fresh, never replayed; buttons parsed into actions."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from stream_guard.alert.feedback import action_to_control
from stream_guard.alert.silences import Silence
from stream_guard.clock import ManualClock
from stream_guard.errors import ConfigError
from stream_guard.sinks.interactivity import (
    ACTIONS,
    MAX_BODY,
    AlertAction,
    interactivity_handler,
    parse_actions,
)
from stream_guard.sinks.slack_blocks import ACK_ACTION_ID, SNOOZE_ACTION_ID, render_parent
from tests.unit.sinks.test_slack_blocks import WINDOW_END_MS, record

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


# --- Malformed requests: always a 4xx and one log line, never a 500 or a traceback ----------


def form(body: dict[str, object] | list[object] | str) -> bytes:
    """`body` as Slack sends it: JSON in the form field `payload`."""
    text = body if isinstance(body, str) else json.dumps(body)
    return urlencode({"payload": text}).encode()


def block_actions(**overrides: object) -> dict[str, object]:
    body = json.loads(parse_qs(payload().decode())["payload"][0])
    return {**body, **overrides}


def send_all(requests: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    """POST each (body, headers) to the endpoint; the statuses, in order."""
    statuses: list[int] = []

    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        for body, headers in requests:
            statuses.append((await client.post(PATH, data=body, headers=headers)).status)

    assert run(scenario) == []
    return statuses


def assert_one_line_per_refusal(caplog: pytest.LogCaptureFixture, count: int) -> None:
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == count
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in caplog.records)
    assert "Traceback" not in caplog.text and SECRET not in caplog.text


UNSIGNED = {
    "invalid-utf8": (b"payload=\xff\xfe\xfd", {}),
    "invalid-utf8-with-headers": (b"\xff\xfe", signed(payload())),
    "superscript-timestamp": (payload(), {**signed(payload()), "X-Slack-Request-Timestamp": "²"}),
    "5000-digit-timestamp": (
        payload(),
        {**signed(payload()), "X-Slack-Request-Timestamp": "1" * 5000},
    ),
    "fullwidth-timestamp": (
        payload(),
        {**signed(payload()), "X-Slack-Request-Timestamp": "１７７２６３３７００"},
    ),
    "negative-timestamp": (payload(), {**signed(payload()), "X-Slack-Request-Timestamp": "-1"}),
    "non-ascii-signature": (payload(), {**signed(payload()), "X-Slack-Signature": "v0=é" * 20}),
    "no-signature": (payload(), {"X-Slack-Request-Timestamp": str(NOW_S)}),
    "empty": (b"", {}),
}


@pytest.mark.parametrize("case", UNSIGNED.values(), ids=UNSIGNED.keys())
def test_unsigned_malformed_requests_get_401(
    case: tuple[bytes, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert send_all([case]) == [401]
    assert_one_line_per_refusal(caplog, 1)


DEEP = "[" * 100_000 + "]" * 100_000
SIGNED_MALFORMED = {
    "invalid-utf8": b"payload=%7B%7D\xff",
    "no-payload-field": b"text=hello",
    "not-json": b"payload=%7Bnot-json",
    "json-array": form([1, 2]),
    "deep-nesting-100k": b"payload=" + DEEP.encode(),  # 200 KB: under the body limit
    "deep-nesting-in-user": form(block_actions(user=json.loads("[" * 500 + "]" * 500))),
    "user-as-string": form(block_actions(user="U0ANALYST")),
    "user-missing": form({k: v for k, v in block_actions().items() if k != "user"}),
    "user-id-as-number": form(block_actions(user={"id": 12345})),
    "actions-not-a-list": form(block_actions(actions={"action_id": ACK_ACTION_ID})),
    "action-not-an-object": form(block_actions(actions=["stream_guard.ack"])),
    "action-value-as-number": form(
        block_actions(actions=[{"action_id": ACK_ACTION_ID, "value": 7}])
    ),
    "channel-as-list": form(block_actions(channel=["C1"])),
    "button-value-deep": form(
        block_actions(actions=[{"action_id": ACK_ACTION_ID, "value": "[" * 5000 + "]" * 5000}])
    ),
    "button-slice-not-strings": form(
        block_actions(
            actions=[
                {
                    "action_id": SNOOZE_ACTION_ID,
                    "value": json.dumps({"episode_id": "e", "metric": "m", "slice": {"a": [1]}}),
                }
            ]
        )
    ),
}


@pytest.mark.parametrize("body", SIGNED_MALFORMED.values(), ids=SIGNED_MALFORMED.keys())
def test_signed_malformed_payloads_get_400(body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert send_all([(body, signed(body))]) == [400]
    assert_one_line_per_refusal(caplog, 1)


def test_bodies_over_the_limit_get_413_before_being_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    huge = form(DEEP)  # 100k-deep nesting, percent-encoded: 600 KB
    assert len(huge) > MAX_BODY
    statuses: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):  # no Content-Length: refused while reading
            yield b"x" * 10_000

    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        for body in (huge, b"payload=" + b"a" * MAX_BODY):
            statuses.append((await client.post(PATH, data=body, headers=signed(body))).status)
        resp = await client.post(PATH, data=chunks(), headers=signed(b""))
        statuses.append(resp.status)
        exact = b"payload=" + b"a" * (MAX_BODY - 8)  # exactly the limit: read, then refused
        statuses.append((await client.post(PATH, data=exact, headers=signed(exact))).status)

    assert run(scenario) == []
    assert statuses == [413, 413, 413, 400]
    assert_one_line_per_refusal(caplog, 4)


def test_random_requests_never_get_a_500() -> None:
    rng = random.Random(11)
    pieces = [b"payload=", b"%7B", b"%5B", b"\xff", b"&", b"=", b"%22", b"type", b"user", b"a"]
    requests = []
    for i in range(150):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 30)))
        stamp = rng.choice([str(NOW_S), "²", "0" * 13, "", "1e9", " 1"])
        headers = signed(body) if i % 2 else {**signed(body), "X-Slack-Request-Timestamp": stamp}
        requests.append((body, headers))
    assert all(status in (200, 400, 401) for status in send_all(requests))


@pytest.mark.parametrize("secret", ["", "   ", "\t\n"])
def test_a_blank_signing_secret_is_a_config_error(secret: str) -> None:
    async def on_action(action: AlertAction) -> None: ...

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        interactivity_handler(SecretStr(secret), ManualClock(0), on_action)


def test_every_button_of_a_parent_parses_to_its_action() -> None:
    """The ids `render_parent` gives its buttons are the ones the endpoint reads."""
    [actions] = [b for b in render_parent(record(), WINDOW_END_MS).blocks
                 if b["type"] == "actions"]
    pressed = [{"action_id": b["action_id"], "value": b["value"]} for b in actions["elements"]]
    body = {"type": "block_actions", "user": {"id": "U1"}, "actions": pressed}
    parsed = parse_actions(urlencode({"payload": json.dumps(body)}).encode(), at_ms=0)
    assert [a.action for a in parsed] == ["acknowledge", "snooze_1h", "snooze_4h",
                                          "snooze_24h", "feedback_real", "feedback_false_alarm"]
    assert {a.action for a in parsed} == set(ACTIONS.values())
    assert {(a.metric, tuple(a.slice.items())) for a in parsed} == {("gmv", (("region", "EU"),))}


def test_the_same_press_on_two_workers_writes_the_same_control_records() -> None:
    """Behind the compose ingress any worker may take a request; each guards replays only
    locally, so a replay (or Slack's retry) can reach a second worker. The action's time is the
    signed timestamp, not the worker's clock: both write identical records, which is a no-op."""
    button = json.dumps({"episode_id": "gmv-ep", "metric": "gmv", "slice": {"region": "EU"}})
    body = payload(SNOOZE_ACTION_ID, episode=button)
    headers = signed(body)

    def worker(arrives_after_ms: int) -> list[AlertAction]:
        async def scenario(
            client: TestClient[web.Request, web.Application], clock: ManualClock
        ) -> None:
            clock.advance(arrives_after_ms)
            assert (await client.post(PATH, data=body, headers=headers)).status == 200

        return run(scenario)

    first, second = worker(2_000), worker(95_000)
    assert first[0].at_ms == NOW_S * 1000  # when Slack signed it, not when it arrived
    records = [action_to_control(a) for a in first + second]
    assert records[0] is not None and records[0] == records[1]
    assert isinstance(records[0], Silence) and records[0].starts_ms == NOW_S * 1000


def test_a_press_signed_ahead_of_our_clock_takes_our_time() -> None:
    """Slack's clock a few seconds ahead of ours: the snooze must start now, not in our future
    (a silence not yet active would not mute anything)."""
    body = payload(SNOOZE_ACTION_ID)

    async def scenario(
        client: TestClient[web.Request, web.Application], clock: ManualClock
    ) -> None:
        assert (await client.post(PATH, data=body, headers=signed(body, NOW_S + 30))).status == 200

    (action,) = run(scenario)
    assert action.at_ms == NOW_S * 1000
