"""Slack interactivity endpoint: the Acknowledge / Snooze 1h buttons of alert messages.

An aiohttp handler that accepts a request only when Slack's signature is valid and fresh
(slack-sdk's `SignatureVerifier`, with our injected clock) and was not seen before: a replayed
request (same signature within the 5-minute window) is refused like a forged one, with 401.
The parsed action (who, which action, which episode) goes to a callback; what acknowledging or
snoozing means is the callback's business.

    app = web.Application()
    app.router.add_post("/slack/interactivity",
                        interactivity_handler(settings.signing_secret, SystemClock(), on_action))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from pydantic import SecretStr
from slack_sdk import signature

from stream_guard.clock import Clock
from stream_guard.sinks.slack_blocks import ACK_ACTION_ID, SNOOZE_ACTION_ID

__all__ = ["ACTIONS", "AlertAction", "interactivity_handler"]

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300  # Slack's own freshness limit: older requests fail the timestamp check
ACTIONS = {ACK_ACTION_ID: "acknowledge", SNOOZE_ACTION_ID: "snooze_1h"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AlertAction:
    """A button pressed on an alert: who, what ("acknowledge" or "snooze_1h"), which episode.

    `metric` and `slice` come with the button (see `slack_blocks.button_value`): a snooze
    silences them. A button whose value is a bare episode id leaves them None / empty.
    """

    action: str
    episode_id: str
    user_id: str
    user_name: str | None
    channel_id: str | None
    message_ts: str | None
    at_ms: int
    metric: str | None = None
    slice: Mapping[str, str] = field(default_factory=dict)


class _SlackClock(signature.Clock):
    """slack-sdk's clock interface over ours, so tests control staleness."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock.now_ms() / 1000


class _ReplayGuard:
    """Signatures seen within the window; older ones are dropped (they fail freshness anyway)."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seen: dict[str, float] = {}

    def first_time(self, sig: str, now_s: float) -> bool:
        self._seen = {s: t for s, t in self._seen.items() if now_s - t <= self._window_s}
        if sig in self._seen:
            return False
        self._seen[sig] = now_s
        return True


def interactivity_handler(
    signing_secret: SecretStr,
    clock: Clock,
    on_action: Callable[[AlertAction], Awaitable[None]],
) -> Handler:
    """The POST handler for Slack's interactivity request URL."""
    verifier = signature.SignatureVerifier(signing_secret.get_secret_value(), _SlackClock(clock))
    replays = _ReplayGuard(REPLAY_WINDOW_S)

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        sig = request.headers.get("X-Slack-Signature", "")
        if not (stamp.isdigit() and verifier.is_valid(body, stamp, sig)):
            log.warning("interactivity: refused a request with a bad or stale signature")
            return web.Response(status=401, text="invalid signature")
        if not replays.first_time(sig, clock.now_ms() / 1000):
            log.warning("interactivity: refused a replayed request")
            return web.Response(status=401, text="replayed request")
        try:
            actions = parse_actions(body, clock.now_ms())
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        for action in actions:
            await on_action(action)
        return web.Response(status=200)

    return handle


def parse_actions(body: bytes, at_ms: int) -> list[AlertAction]:
    """Our button presses in a form-encoded `payload`; other actions are ignored."""
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
    except (KeyError, IndexError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a Slack interactivity payload: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return []
    user: dict[str, Any] = payload.get("user") or {}
    channel: dict[str, Any] = payload.get("channel") or {}
    message: dict[str, Any] = payload.get("container") or {}
    return [
        AlertAction(
            action=ACTIONS[item["action_id"]],
            user_id=str(user.get("id", "")),
            user_name=user.get("username") or user.get("name"),
            channel_id=channel.get("id"),
            message_ts=message.get("message_ts"),
            at_ms=at_ms,
            **_button_value(str(item["value"])),
        )
        for item in payload.get("actions") or []
        if isinstance(item, dict) and item.get("action_id") in ACTIONS and item.get("value")
    ]


def _button_value(value: str) -> dict[str, Any]:
    """episode_id, metric and slice from a button value (JSON), or a bare episode id."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("episode_id"), str):
        return {"episode_id": value}
    labels = data.get("slice")
    if not isinstance(labels, dict):
        labels = {}
    metric = data.get("metric")
    return {
        "episode_id": data["episode_id"],
        "metric": metric if isinstance(metric, str) and metric else None,
        "slice": {str(k): str(v) for k, v in labels.items()},
    }
