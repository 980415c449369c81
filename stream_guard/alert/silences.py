"""Silences and acknowledgements: the records of the control topic, and the view built from them.

A silence mutes the alert updates of one metric (optionally narrowed to slice labels) between
`starts_ms` and `ends_ms`, like an Alertmanager silence with equality matchers. Expiring a silence
re-publishes it with `ends_ms` set to now; the latest record per id wins, so the control topic
(key = silence id) is the whole history and every worker that reads it from the beginning agrees
on what is active. An acknowledgement records who took an episode (the Acknowledge button);
feedback records an analyst's verdict on an episode ("Real issue" / "False alarm"), keyed by the
episode: the latest answer wins (alert/feedback.py reads them into precision per rule).

Matching looks at the alert's labels: its metric and its slice (the episode's slice; the engine
already folded the metric's firing slices into that one episode). A silence on
``metric=complaint_rate, slice={region: EU}`` mutes an episode whose slice has region=EU; a
silence without slice labels mutes every episode of the metric.

>>> s = Silence.create("complaint_rate", {"region": "EU"}, 0, 3_600_000, "deploy", "ana")
>>> s.matches("complaint_rate", {"region": "EU", "category": "toys"}, now_ms=60_000)
True
>>> s.matches("complaint_rate", {}, now_ms=60_000), s.matches("gmv", {"region": "EU"}, 60_000)
(False, False)
>>> view = ControlView()
>>> view.apply(s.to_record()).id == s.id
True
>>> [x.author for x in view.silencing("complaint_rate", {"region": "EU"}, now_ms=60_000)]
['ana']
>>> _ = view.apply(s.expired(30_000).to_record())
>>> view.silencing("complaint_rate", {"region": "EU"}, now_ms=60_000)
[]
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from stream_guard.config.errors import format_validation_error
from stream_guard.errors import InvalidEvent

__all__ = ["VERDICTS", "Ack", "ControlRecord", "ControlView", "Feedback", "Silence", "Verdict",
           "parse_control"]

Verdict = Literal["real", "false_alarm"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
"""What an analyst can say of an episode: a real issue, or a false alarm."""


def _labels(value: Any) -> Any:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]


class _ControlRecord(BaseModel):
    # Strict: the control topic is ours alone, and a silence we misread would mute the wrong thing.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Silence(_ControlRecord):
    """Mute `metric` (and, when given, only the slices with these labels) in [starts, ends)."""

    kind: Literal["silence"] = "silence"
    id: str = Field(min_length=1, max_length=200)
    metric: str = Field(min_length=1)
    slice: Labels = {}
    starts_ms: int
    ends_ms: int
    reason: str = Field(min_length=1, max_length=1000)
    author: str = Field(min_length=1, max_length=200)
    episode_id: str | None = None  # set by "Snooze 1h": the episode whose parent shows it

    @classmethod
    def create(
        cls,
        metric: str,
        slice_: Mapping[str, str],
        starts_ms: int,
        ends_ms: int,
        reason: str,
        author: str,
        episode_id: str | None = None,
    ) -> Silence:
        """A new silence; its id is derived from its content, so a retried `add` is idempotent."""
        basis = f"{metric}|{sorted(slice_.items())}|{starts_ms}|{ends_ms}|{author}|{reason}"
        sid = "sil-" + hashlib.sha256(basis.encode()).hexdigest()[:12]
        return cls(
            id=sid,
            metric=metric,
            slice=dict(slice_),
            starts_ms=starts_ms,
            ends_ms=ends_ms,
            reason=reason,
            author=author,
            episode_id=episode_id,
        )

    def active(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def matches(self, metric: str, slice_: Mapping[str, str], now_ms: int) -> bool:
        """Active now, same metric, and every slice label of the silence present and equal."""
        if not self.active(now_ms) or metric != self.metric:
            return False
        return all(slice_.get(k) == v for k, v in self.slice.items())

    def expired(self, now_ms: int) -> Silence:
        """The same silence ending at `now_ms` (or unchanged if it already ended)."""
        return self.model_copy(update={"ends_ms": min(self.ends_ms, now_ms)})

    def to_record(self) -> dict[str, Any]:
        return self.model_dump()


class Ack(_ControlRecord):
    """Someone acknowledged an episode from Slack; the parent message shows who and when."""

    kind: Literal["ack"] = "ack"
    episode_id: str = Field(min_length=1)
    user_id: str
    user_name: str | None = None
    at_ms: int

    @property
    def id(self) -> str:
        """The control-topic key: one ack per episode, the latest wins."""
        return f"ack-{self.episode_id}"

    def to_record(self) -> dict[str, Any]:
        return self.model_dump()


class Feedback(_ControlRecord):
    """An analyst's verdict on an episode from Slack; one per episode, the latest wins.

    `metric` and `slice` come with the button (as for a snooze), so precision per rule can be
    counted from the control topic alone; `rule_version` when the button carried it.
    """

    kind: Literal["feedback"] = "feedback"
    episode_id: str = Field(min_length=1, max_length=200)
    verdict: Verdict
    metric: str | None = Field(default=None, min_length=1, max_length=200)
    slice: Labels = {}
    user_id: str = Field(min_length=1, max_length=64)
    user_name: str | None = Field(default=None, max_length=255)
    at_ms: int

    @property
    def id(self) -> str:
        """The control-topic key: one verdict per episode, the latest wins."""
        return f"feedback-{self.episode_id}"

    def to_record(self) -> dict[str, Any]:
        return self.model_dump()


ControlRecord = Silence | Ack | Feedback


class _Envelope(BaseModel):
    record: ControlRecord = Field(discriminator="kind")


def parse_control(value: Mapping[str, Any]) -> ControlRecord:
    """A control-topic value as a Silence, an Ack or Feedback; anything else raises
    InvalidEvent."""
    try:
        return _Envelope.model_validate({"record": value}).record
    except ValidationError as exc:
        detail = "; ".join(format_validation_error(exc))
        raise InvalidEvent("invalid_control_record", detail) from None


@dataclass
class ControlView:
    """Every silence (latest record per id), the latest ack and feedback per episode, from the
    topic; `answers` counts feedback records per (metric, verdict) and `invalid` the records
    that were refused (the /metrics of the worker export both)."""

    silences: dict[str, Silence] = field(default_factory=dict)
    acks: dict[str, Ack] = field(default_factory=dict)
    feedback: dict[str, Feedback] = field(default_factory=dict)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)

    def apply(self, value: Mapping[str, Any]) -> ControlRecord:
        """Fold one control record in (counted, then InvalidEvent if malformed); returns it
        parsed."""
        try:
            record = parse_control(value)
        except InvalidEvent as exc:
            self.invalid[exc.reason] += 1
            raise
        if isinstance(record, Silence):
            self.silences[record.id] = record
        elif isinstance(record, Ack):
            self.acks[record.episode_id] = record
        else:
            self.feedback[record.episode_id] = record
            self.answers[(record.metric or "", record.verdict)] += 1
        return record

    def silencing(self, metric: str, slice_: Mapping[str, str], now_ms: int) -> list[Silence]:
        """The silences muting an alert of `metric` on `slice_` now, by id."""
        found = (s for s in self.silences.values() if s.matches(metric, slice_, now_ms))
        return sorted(found, key=lambda s: s.id)

    def snooze_of(self, episode_id: str, now_ms: int) -> Silence | None:
        """The active snooze created from this episode's parent message, if any."""
        active = [
            s for s in self.silences.values() if s.episode_id == episode_id and s.active(now_ms)
        ]
        return max(active, key=lambda s: s.ends_ms, default=None)
