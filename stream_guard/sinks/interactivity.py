"""Slack interactivity endpoint: the buttons of alert messages (Acknowledge, Snooze 1h / 4h /
24h, Real issue, False alarm).

An aiohttp handler that accepts a request only when Slack's signature is valid and fresh and was
not seen before: a replayed request (same signature within the 5-minute window) is refused like
a forged one. The parsed action (who, which action, which episode) goes to a callback; what
acknowledging, snoozing or judging means is the callback's business (alert/feedback.py).

Nothing a client sends can make it fail: every refusal is one log line (no traceback) and a 4xx,
checked in this order, so nothing unsigned is ever parsed:

- 413: a body over `MAX_BODY` (by Content-Length, else while reading: never read whole);
- 401: signature headers missing or malformed (the timestamp must be 1-12 ASCII digits: `²` is
  a digit to `str.isdigit` and 5,000 digits are too many for `int`), a bad or stale signature
  (HMAC-SHA256 over the raw bytes, as Slack specifies, so a body that is not UTF-8 is merely
  unsigned), or a replay;
- 400: a signed body that is not a form with a JSON object `payload`, nested too deeply, or a
  `block_actions` payload with wrong types (`user` not an object, `actions` not a list...).

An action's time (`AlertAction.at_ms`) is the signed request timestamp, not the receiving
worker's clock (unless that clock is behind it: a snooze must be active at once), so the same
request gives the same control records whichever worker takes it. The
replay guard is per process, so behind a load balancer (docker-compose's `ingress`: any worker
may take a press) a replay, or Slack's own retry of a slow answer, can reach a second worker
within the window; it then writes byte-identical records (a silence's id is derived from its
content), which changes nothing.

    app = web.Application()
    app.router.add_post("/slack/interactivity",
                        interactivity_handler(settings.signing_secret, SystemClock(), on_action))
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from stream_guard.clock import Clock
from stream_guard.config.errors import format_validation_error
from stream_guard.errors import ConfigError
from stream_guard.sinks.slack_blocks import (
    ACK_ACTION_ID,
    FALSE_ALARM_ACTION_ID,
    REAL_ACTION_ID,
    SNOOZE_ACTION_IDS,
)

__all__ = ["ACTIONS", "MAX_BODY", "AlertAction", "interactivity_handler", "parse_actions"]

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300  # Slack's own freshness limit: older requests fail the timestamp check
MAX_BODY = 256 * 1024  # a press on our largest message is ~50 KB form-encoded (hostile emoji)
ACTIONS = {
    ACK_ACTION_ID: "acknowledge",
    **{action_id: f"snooze_{hours}h" for action_id, hours in SNOOZE_ACTION_IDS.items()},
    REAL_ACTION_ID: "feedback_real",
    FALSE_ALARM_ACTION_ID: "feedback_false_alarm",
}
"""Button action id -> the action's name in `AlertAction.action`."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class AlertAction:
    """A button pressed on an alert: who, what (a value of `ACTIONS`: "acknowledge",
    "snooze_1h", "snooze_4h", "snooze_24h", "feedback_real", "feedback_false_alarm"), which
    episode.

    `metric` and `slice` come with the button (see `slack_blocks.button_value`): a snooze
    silences them, feedback is counted per metric. A button whose value is a bare episode id
    leaves them None / empty.
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


class _Refused(Exception):
    """A client's error: the status to answer and the one-line reason to log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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
    """The POST handler for Slack's interactivity request URL (a blank secret is a ConfigError)."""
    secret = signing_secret.get_secret_value()
    if not secret.strip():
        raise ConfigError("SLACK_SIGNING_SECRET: must not be blank")
    key = secret.encode()
    replays = _ReplayGuard(REPLAY_WINDOW_S)

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = await _read_body(request)
            sig, stamp_s = _verify(key, body, request.headers, clock.now_ms() / 1000)
            if not replays.first_time(sig, clock.now_ms() / 1000):
                raise _Refused(401, "replayed request")
            # signed time, so every worker makes the same records; never ahead of our clock
            # (a snooze starting in our future would not be active yet)
            actions = _parse(body, min(stamp_s * 1000, clock.now_ms()))
        except _Refused as refused:
            log.warning("interactivity: refused (%d): %s", refused.status, refused.reason)
            return web.Response(status=refused.status, text=refused.reason)
        for action in actions:
            await on_action(action)
        return web.Response(status=200)

    return handle


async def _read_body(request: web.Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed MAX_BODY."""
    if (request.content_length or 0) > MAX_BODY:
        raise _Refused(413, f"body of {request.content_length} bytes (limit {MAX_BODY})")
    body = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(body)):
        body += chunk
        if len(body) > MAX_BODY:
            raise _Refused(413, f"body over {MAX_BODY} bytes")
    return bytes(body)


def _verify(
    key: bytes, body: bytes, headers: Mapping[str, str], now_s: float
) -> tuple[str, int]:
    """The request's signature and signed timestamp (s) when it is well-formed, fresh and
    Slack's; else 401."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    sig = headers.get("X-Slack-Signature", "")
    if not (_TIMESTAMP.fullmatch(stamp) and _SIGNATURE.fullmatch(sig)):
        raise _Refused(401, "missing or malformed signature headers")
    if abs(now_s - int(stamp)) > REPLAY_WINDOW_S:
        raise _Refused(401, "stale or future timestamp")
    digest = hmac.new(key, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v0={digest}", sig):
        raise _Refused(401, "invalid signature")
    return sig, int(stamp)


def _parse(body: bytes, at_ms: int) -> list[AlertAction]:
    try:
        return parse_actions(body, at_ms)
    except ValueError as exc:
        raise _Refused(400, str(exc)) from None


# The part of a block_actions payload we read; anything else in it is ignored, but what we read
# must have the right type (strict: no coercion of a number into an id).
_STRICT = ConfigDict(strict=True, frozen=True, extra="ignore")
_Text = Annotated[str, Field(max_length=255)]


class _User(BaseModel):
    model_config = _STRICT
    id: Annotated[str, Field(min_length=1, max_length=64)]
    username: _Text | None = None
    name: _Text | None = None


class _Channel(BaseModel):
    model_config = _STRICT
    id: _Text | None = None


class _Container(BaseModel):
    model_config = _STRICT
    message_ts: _Text | None = None


class _Action(BaseModel):
    model_config = _STRICT
    action_id: _Text
    value: Annotated[str, Field(max_length=2000)] | None = None


class _BlockActions(BaseModel):
    model_config = _STRICT
    user: _User
    channel: _Channel | None = None
    container: _Container | None = None
    actions: list[_Action]


class _ButtonValue(BaseModel):
    model_config = _STRICT
    episode_id: Annotated[str, Field(min_length=1)]
    metric: Annotated[str, Field(min_length=1)] | None = None
    slice: dict[str, str] = {}


def parse_actions(body: bytes, at_ms: int) -> list[AlertAction]:
    """Our button presses in a form-encoded `payload`; other interactions and actions are ignored.

    Raises ValueError (the endpoint's 400) for a body that is not such a form, or a
    `block_actions` payload with wrong types.
    """
    payload = _payload(body)
    if payload.get("type") != "block_actions":
        return []
    event = _validated(_BlockActions, payload, "block_actions payload")
    user, channel, container = event.user, event.channel, event.container
    return [
        AlertAction(
            action=ACTIONS[item.action_id],
            user_id=user.id,
            user_name=user.username or user.name,
            channel_id=channel.id if channel else None,
            message_ts=container.message_ts if container else None,
            at_ms=at_ms,
            **_button_value(item.value),
        )
        for item in event.actions
        if item.action_id in ACTIONS and item.value
    ]


def _payload(body: bytes) -> dict[str, Any]:
    """The JSON object in the form field `payload` (deep nesting is refused, not a crash)."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
        payload = _json(form["payload"][0])
    except (KeyError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a Slack interactivity payload: {type(exc).__name__}") from None
    if not isinstance(payload, dict):
        raise ValueError("not a Slack interactivity payload: not a JSON object")
    return payload


def _json(text: str) -> Any:
    """json.loads, with nesting past the interpreter's recursion limit as a ValueError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: object, what: str) -> M:
    """`data` as `model`, or a ValueError naming where it is wrong (never the values)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(format_validation_error(exc)[:3])
        raise ValueError(f"malformed {what}: {problems}") from None


def _button_value(value: str) -> dict[str, Any]:
    """episode_id, metric and slice from a button value (a JSON object), or a bare episode id."""
    try:
        data = _json(value)
    except json.JSONDecodeError:  # not JSON: a bare episode id (buttons of older messages)
        data = None
    if not isinstance(data, dict):
        return {"episode_id": value}
    parsed = _validated(_ButtonValue, data, "button value")
    return {"episode_id": parsed.episode_id, "metric": parsed.metric, "slice": parsed.slice}
