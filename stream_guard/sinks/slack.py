"""The Slack sink: chat.postMessage / chat.update through slack-sdk's `WebClient`, nothing else.

The sink sends once and says how a failure should be handled: `RetryableSinkError` (rate limit
with its Retry-After, 5xx, timeouts, connection errors) or `PermanentSinkError` (bad token,
unknown channel, bot not in channel, malformed message...). It never retries itself: one retry
stage in `stream_guard.alert.notify` owns backoff, so the WebClient is built without its own
retry handlers.

Secrets are `SecretStr`: they appear in no log line, exception message or repr.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from stream_guard.config.env import model_from_env
from stream_guard.errors import PermanentSinkError, RetryableSinkError, SinkError
from stream_guard.sinks.slack_blocks import SlackMessage

__all__ = ["Posted", "SlackSettings", "SlackSink", "classify_slack_error"]

DEFAULT_BASE_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT_S = 10  # Slack answers in well under a second; a hung call must not stall alerts

# Slack error codes that a later attempt can fix; every other code is permanent.
_RETRYABLE_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
# Transport failures: timeouts, refused or dropped connections, truncated responses.
# (URLError and socket timeouts are OSErrors.)
_TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class SlackSettings(BaseModel):
    """Slack configuration, read from the environment by `from_env`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_token: SecretStr = Field(min_length=1)
    signing_secret: SecretStr | None = None
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^https?://\S+/$")

    @field_validator("bot_token", "signing_secret")
    @classmethod
    def _one_printable_word(cls, value: SecretStr | None) -> SecretStr | None:
        """A blank or whitespace-only secret is a deployment mistake: refused at start, naming
        the variable, rather than failing later (slack-sdk's verifier raises, an HTTP header
        with a newline raises with the token in the message). The value is never echoed."""
        if value is None:
            return None
        raw = value.get_secret_value()
        if not raw.strip():
            raise ValueError("must not be blank")
        if not raw.isprintable() or any(char.isspace() for char in raw):
            raise ValueError("must not contain whitespace or control characters")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SlackSettings:
        """SLACK_BOT_TOKEN (required), SLACK_SIGNING_SECRET, STREAM_GUARD_SLACK_BASE_URL.

        An empty variable counts as unset (docker-compose passes `${VAR:-}`); one of spaces only
        is a ConfigError naming it.
        """
        names = {
            "bot_token": "SLACK_BOT_TOKEN",
            "signing_secret": "SLACK_SIGNING_SECRET",
            "base_url": "STREAM_GUARD_SLACK_BASE_URL",
        }
        return model_from_env(cls, names, environ)


@dataclass(frozen=True, slots=True)
class Posted:
    """Where Slack put a message: the channel id (chat.update needs the id) and its ts."""

    channel: str
    ts: str


def classify_slack_error(exc: Exception, method: str, channel: str) -> SinkError:
    """Map a WebClient failure to a retryable or permanent sink error (message without secrets)."""
    where = f"{method} to {channel}"
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error", ""))
        if not _ERROR_CODE.match(code):  # e.g. slack-sdk's note about a non-JSON 5xx page
            code = f"http_{status}"
        if status == 429 or code == "ratelimited":
            retry_after = _retry_after(exc.response.headers)
            return RetryableSinkError(f"{where}: rate limited ({code})", retry_after=retry_after)
        if status >= 500 or code in _RETRYABLE_CODES:
            return RetryableSinkError(f"{where}: Slack error {code} (HTTP {status})")
        return PermanentSinkError(f"{where}: Slack error {code} (HTTP {status})")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return RetryableSinkError(f"{where}: {type(exc).__name__}: {_reason(exc)}")
    raise exc


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return max(float(raw), 0.0)
            except ValueError:
                return None
    return None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)


class SlackSink:
    """Posts and updates alert messages; one call, one HTTP request, errors classified."""

    def __init__(self, client: WebClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, settings: SlackSettings, timeout: int = DEFAULT_TIMEOUT_S) -> SlackSink:
        client = WebClient(
            token=settings.bot_token.get_secret_value(),
            base_url=settings.base_url,
            timeout=timeout,
            retry_handlers=[],  # the notifier's retry stage owns backoff
        )
        return cls(client)

    def __repr__(self) -> str:
        return f"SlackSink(base_url={self._client.base_url!r})"

    def post(
        self,
        channel: str,
        message: SlackMessage,
        *,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Posted:
        """chat.postMessage; a reply when `thread_ts` is given (`broadcast` also shows it)."""
        extra: dict[str, Any] = {}
        if thread_ts is not None:
            extra["thread_ts"] = thread_ts
            if broadcast:
                extra["reply_broadcast"] = True
        data = self._call(
            "chat.postMessage",
            channel,
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                unfurl_links=False,
                unfurl_media=False,
                **extra,
            ),
        )
        return Posted(channel=str(data["channel"]), ts=str(data["ts"]))

    def update(self, channel: str, ts: str, message: SlackMessage) -> None:
        """chat.update of a message we posted (`channel` must be the id Slack returned)."""
        self._call(
            "chat.update",
            channel,
            lambda: self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

    def upload(self, channel: str, thread_ts: str, content: bytes, filename: str,
               title: str) -> None:
        """files_upload_v2 into a thread (its three calls: files.getUploadURLExternal, the
        POST of the bytes, files.completeUploadExternal); `channel` must be the id."""
        try:
            self._client.files_upload_v2(channel=channel, thread_ts=thread_ts, file=content,
                                         filename=filename, title=title)
        except Exception as exc:  # classified below; anything unknown is re-raised as is
            raise classify_slack_error(exc, "files_upload_v2", channel) from None

    @staticmethod
    def _call(method: str, channel: str, send: Callable[[], Any]) -> Mapping[str, Any]:
        try:
            response = send()
        except Exception as exc:  # classified below; anything unknown is re-raised as is
            raise classify_slack_error(exc, method, channel) from None
        data = response.data
        if not isinstance(data, dict) or "ts" not in data or "channel" not in data:
            raise PermanentSinkError(f"{method} to {channel}: response without channel/ts")
        return data
