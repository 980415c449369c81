"""bytes ⇄ events: decoding, validation against the topic schemas, dead-letter records.

A Kafka message value holds one event (a JSON object) or, for high-volume producers, a batch:
a JSON array of events or JSONL. Each event of a batch is validated on its own, so one bad event
never takes its neighbours down with it.

>>> codec = Codec.from_topics()
>>> good, bad = codec.decode("orders", b'{"event_id": "e1"}', origin="orders:0@7")
>>> good, bad[0].reason
([], 'missing_field')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stream_guard.config.topics import TopicSpec, load_topics
from stream_guard.errors import InvalidEvent
from stream_guard.ingest.files import FileTopic, Rejected
from stream_guard.ingest.schema import Validator, compile_schema
from stream_guard.types import Event

__all__ = ["RAW_LIMIT", "Codec", "DeadLetter", "encode_batch", "encode_event"]

RAW_LIMIT = 4096
"""Bytes of the offending payload kept in a dead-letter record (enough to debug, bounded)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not become an event, and why."""

    topic: str
    origin: str  # "partition:offset" for Kafka, "file:line" for files
    reason: str  # a short stable code, counted per value
    detail: str
    raw: str

    def to_json(self) -> dict[str, str]:
        return {"topic": self.topic, "origin": self.origin, "reason": self.reason,
                "detail": self.detail, "raw": self.raw}


def _bounded(raw: bytes | str | object) -> str:
    if isinstance(raw, Rejected):
        raw = raw.raw
    if isinstance(raw, bytes):
        return raw[:RAW_LIMIT].decode("utf-8", "replace")
    if isinstance(raw, str):
        return raw[:RAW_LIMIT]
    return orjson.dumps(raw, default=str)[:RAW_LIMIT].decode("utf-8", "replace")


class Codec:
    """Decodes and validates the values of the topics it knows."""

    def __init__(self, topics: Mapping[str, TopicSpec]) -> None:
        self.topics = dict(topics)
        # Internal topics (alerts, partials, ...) carry our own records, never events: a schema
        # there is a published contract (topics/alerts.yaml), not something to ingest.
        self._validators: dict[str, Validator] = {
            name: compile_schema(spec.json_schema)
            for name, spec in topics.items()
            if spec.json_schema is not None and not spec.internal
        }
        self._event_topics = frozenset(self._validators)

    @classmethod
    def from_topics(cls, directory: Path | None = None) -> Codec:
        return cls(load_topics(directory))

    @property
    def event_topics(self) -> frozenset[str]:
        return self._event_topics

    def validate(self, topic: str, obj: Any) -> int:
        """Event time (epoch ms) of a decoded value; raises InvalidEvent."""
        try:
            validator = self._validators[topic]
        except KeyError:
            raise _no_schema(topic, obj) from None
        return validator(obj)

    def validator(self, topic: str) -> Validator:
        """`validate` of one topic, without the topic lookup (for a hot loop)."""
        found = self._validators.get(topic)
        if found is not None:
            return found

        def refuse(obj: Any) -> int:
            raise _no_schema(topic, obj)

        return refuse

    def dead_letter(self, topic: str, origin: str, err: InvalidEvent, raw: object) -> DeadLetter:
        return DeadLetter(topic, origin, err.reason, err.detail, _bounded(raw))

    def parse(self, raw: bytes | str) -> list[Any]:
        """The JSON values in a payload: one object, a JSON array of them, or JSONL."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            lines = raw.splitlines() if isinstance(raw, bytes) else raw.encode().splitlines()
            if len(lines) < 2:
                raise InvalidEvent("bad_json", "payload is not valid JSON") from None
            try:
                return [orjson.loads(line) for line in lines if line.strip()]
            except orjson.JSONDecodeError as exc:
                raise InvalidEvent("bad_json", f"JSONL payload: {exc}") from None
        return value if isinstance(value, list) else [value]

    def decode(
        self, topic: str, raw: bytes | str, origin: str
    ) -> tuple[list[Event], list[DeadLetter]]:
        """Every event of a message value, validated; the failures as dead letters."""
        valid, dead = self.values(topic, raw, origin)
        return [Event(topic, ts_ms, value) for ts_ms, value in valid], dead

    def values(
        self, topic: str, raw: bytes | str, origin: str
    ) -> tuple[list[tuple[int, Any]], list[DeadLetter]]:
        """`decode` as (event time, value) pairs: no `Event` built (the live hot path).

        A payload holding one object (the common case: one event per message) is parsed and
        validated without the general loop; the outcome is the same."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                value = self.parse(raw)  # JSONL, else bad_json
            except InvalidEvent as err:
                return [], [self.dead_letter(topic, origin, err, raw)]
        if type(value) is dict:
            try:
                return [(self.validator(topic)(value), value)], []
            except InvalidEvent as err:
                return [], [self.dead_letter(topic, origin, err, value)]
        values = value if isinstance(value, list) else [value]
        valid: list[tuple[int, Any]] = []
        dead: list[DeadLetter] = []
        validate = self.validator(topic)
        for i, value in enumerate(values):
            try:
                valid.append((validate(value), value))
            except InvalidEvent as err:
                where = origin if len(values) == 1 else f"{origin}#{i}"
                dead.append(self.dead_letter(topic, where, err, value))
        return valid, dead


def _no_schema(topic: str, obj: Any) -> InvalidEvent:
    """Why a value of a topic without a schema is refused: a file line the file source already
    refused (`Rejected`), an envelope-less line in a file named after no topic, or an unknown
    topic. Checked only once the topic lookup failed, so valid events never pay for it."""
    if type(obj) is Rejected:
        return InvalidEvent(obj.reason, obj.detail)
    if type(topic) is FileTopic:
        return InvalidEvent("missing_envelope", "line has no {topic, key, value} envelope and "
                            f"the file's name {str(topic)!r} is no topic")
    return InvalidEvent("unknown_topic", f"no schema for topic {topic!r}")


def encode_event(value: Mapping[str, Any]) -> bytes:
    return orjson.dumps(value)


def encode_batch(values: list[Mapping[str, Any]]) -> bytes:
    """Many events in one message value (a JSON array), to amortise per-message costs."""
    return orjson.dumps(values)
