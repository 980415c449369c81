"""One error root, split by how callers handle each kind of failure."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InvalidEvent",
    "PermanentSinkError",
    "RetryableSinkError",
    "SinkError",
    "StreamGuardError",
]


class StreamGuardError(Exception):
    """Root of every error stream-guard raises on purpose."""


class ConfigError(StreamGuardError):
    """A rule, route, topic or settings file is wrong; the message names file, field and reason."""


class InvalidEvent(StreamGuardError):
    """An event failed decoding or validation; it goes to the dead-letter topic with `reason`.

    `reason` is a short stable code (counted per value in metrics), `detail` the precise message.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class SinkError(StreamGuardError):
    """A sink could not deliver; subclasses say whether trying again can help."""


class RetryableSinkError(SinkError):
    """Temporary failure (rate limit, 5xx, timeout): retry after `retry_after` seconds if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSinkError(SinkError):
    """Failure that retrying cannot fix (bad token, unknown channel): log once, count, move on."""
