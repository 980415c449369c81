"""Frozen domain types shared by every stage of the engine.

A *slice* is a tuple of ``(dimension, value)`` pairs sorted by dimension; ``()`` is the global
series. Timestamps inside the engine are integer epoch milliseconds (``*_ms``); they become
ISO-8601 UTC strings only in records that leave the engine.

`AlertRecord` is what leaves the engine: the one model of an alert record, built by
alert/record.py, published as JSON (`to_json`), read back strictly (`AlertRecord.parse`), printed
and evaluated. It lives here, below every stage that uses it, so that none imports another for it.

>>> slice_key({"region": "EU", "category": "toys"})
(('category', 'toys'), ('region', 'EU'))
>>> format_slice(slice_key({"region": "EU"}))
'region=EU'
>>> format_slice(())
'global'
>>> iso_utc(0)
'1970-01-01T00:00:00Z'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from stream_guard.config.errors import format_validation_error
from stream_guard.errors import InvalidEvent

__all__ = [
    "SEVERITY_ORDER",
    "AlertReason",
    "AlertRecord",
    "AlertSeverity",
    "AlertStatus",
    "Direction",
    "EpisodeSoFar",
    "Event",
    "ExternalHint",
    "FiringSlice",
    "Hint",
    "HintKind",
    "InterventionHint",
    "MetricHint",
    "MetricPoint",
    "RatioHint",
    "RootCauseHint",
    "Score",
    "SellerHint",
    "SellerShare",
    "SeriesPoint",
    "SliceHint",
    "SliceKey",
    "epoch_ms",
    "format_slice",
    "is_ancestor",
    "iso_utc",
    "overlaps",
    "severity_rank",
    "slice_dict",
    "slice_key",
]

SliceKey = tuple[tuple[str, str], ...]
Direction = Literal["up", "down"]
HintKind = Literal["slice", "metric", "intervention", "external", "sellers", "ratio"]


def slice_key(labels: Mapping[str, Any]) -> SliceKey:
    """Canonical, hashable form of a slice given as a mapping."""
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def slice_dict(key: SliceKey) -> dict[str, str]:
    return dict(key)


def format_slice(key: SliceKey) -> str:
    return ", ".join(f"{k}={v}" for k, v in key) if key else "global"


def is_ancestor(parent: SliceKey, child: SliceKey) -> bool:
    """True when `parent` is a strict generalisation of `child` (global is everyone's ancestor).

    >>> is_ancestor((("region", "EU"),), (("channel", "app"), ("region", "EU")))
    True
    >>> is_ancestor((("region", "EU"),), (("region", "EU"),))
    False
    """
    return len(parent) < len(child) and set(parent) <= set(child)


def overlaps(a: SliceKey, b: SliceKey) -> bool:
    """True when `a` and `b` can hold the same events: no dimension with different values (the
    platform overlaps everything; category=home and region=EU overlap, category=home and
    category=toys do not).

    >>> overlaps((("category", "home"),), (("region", "EU"),))
    True
    >>> overlaps((("category", "home"),), (("category", "toys"),))
    False
    """
    mine = dict(a)
    return all(mine.get(k, v) == v for k, v in b)


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with a `Z` (milliseconds kept only when non-zero)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(dt: datetime) -> int:
    """An aware datetime as epoch milliseconds, in integer arithmetic (``iso_utc``'s inverse).

    >>> epoch_ms(datetime(1970, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC))
    1500
    """
    return (dt - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event: its topic, event time and the fields of its value."""

    topic: str
    ts_ms: int
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """The value of one metric for one slice and one closed window.

    `numerator`/`denominator` are the raw aggregates (for sum and count, `denominator` is the
    number of contributing events), so rate-aware detectors can weigh small samples.
    """

    metric: str
    slice: SliceKey
    window_start_ms: int
    window_end_ms: int
    value: float
    numerator: float
    denominator: float

    def features(self) -> dict[str, float]:
        """The `x` handed to detectors (River's dict-of-features contract)."""
        return {
            "t": self.window_start_ms / 1000.0,
            "value": self.value,
            "numerator": self.numerator,
            "denominator": self.denominator,
        }


@dataclass(frozen=True, slots=True)
class Score:
    """A detector's verdict on a point, before learning it."""

    point: MetricPoint
    score: float
    expected: float | None
    anomalous: bool
    direction: Direction


@dataclass(frozen=True, slots=True)
class RootCauseHint:
    """One line of explanation attached to an alert."""

    kind: HintKind
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, **self.details}



# The alert record ------------------------------------------------------------------------------
# Field order is the order of the keys on the wire; every file and topic holds records as
# `to_json` writes them, and the notifier's dedup log compares what `firing_keys` gives.


def _labels(value: Any) -> Any:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else value


Labels = Annotated[dict[str, str], BeforeValidator(_labels)]
"""Slice labels; values read back as numbers are the same labels as strings."""
UtcTime = Annotated[
    AwareDatetime, PlainSerializer(lambda dt: iso_utc(epoch_ms(dt)), return_type=str)
]
"""A moment, written as `iso_utc` writes it (``2026-03-04T14:15:00Z``) and read with any zone."""
AlertStatus = Literal["firing", "resolved", "silenced"]
AlertReason = Literal["new", "escalated", "slices_changed", "resolved", "repeat"]
"""The transition a record announces (alert/episodes.py `Transition`). "repeat" is only read:
records written before reminders moved to the notifier (route `repeat_interval`) carry it."""
AlertSeverity = Literal["warning", "critical"]
SEVERITY_ORDER: tuple[str, ...] = ("info", "warning", "critical")
"""The one severity order, lowest first: episodes escalate, dedup compares and inhibition
matches by it."""


def severity_rank(severity: str | None) -> int:
    """Position in `SEVERITY_ORDER` from 1; 0 for none or a severity this version does not know.

    >>> severity_rank("critical") > severity_rank("warning") > severity_rank(None)
    True
    """
    return SEVERITY_ORDER.index(severity) + 1 if severity in SEVERITY_ORDER else 0


def _absent(value: object) -> bool:
    return value is None


class _Part(BaseModel):
    """Frozen; keys it does not know are ignored, so a newer writer may add fields."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_attribute_docstrings=True)


class FiringSlice(_Part):
    """One anomalous slice of the window, as its detector scored it."""

    slice: Labels
    value: float
    expected: float | None
    score: float


class _Hint(_Part):
    kind: HintKind
    summary: str
    """One line an analyst reads; the other fields say the same for programs."""


class SliceHint(_Hint):
    """A slice that explains the change (explain/slices.py): `level`, the slice itself moved
    (`share` of the change, `relative_change` inside it; the shares of one alert never add up
    to more than 1, and a slice that `overlaps` one named before it claims no share: the same
    change seen along another dimension); `broad`, every slice moved alike (`share` 1); `mix`,
    a ratio's volume shifted toward the slice (`share_gain`)."""

    kind: Literal["slice"]
    slice: Labels
    share: float | None = Field(None, exclude_if=_absent)
    overlaps: Labels | None = Field(None, exclude_if=_absent)  # a slice named before it
    relative_change: float | None = Field(None, exclude_if=_absent)
    share_gain: float | None = Field(None, exclude_if=_absent)
    effect: Literal["level", "broad", "mix"]


class MetricHint(_Hint):
    """Another metric anomalous in the same window and slices. Written by the engine until
    session 9 (records of that time still read); co-moving metrics are now linked by the
    notifier, across owners, on the Slack messages (alert/correlate.py)."""

    kind: Literal["metric"]
    metric: str
    slice: Labels
    direction: Direction


class InterventionHint(_Hint):
    """A governance action whose scope matches the slice, started within the rule's lookback."""

    kind: Literal["intervention"]
    action_id: str
    action_kind: str
    scope: Labels
    at: UtcTime
    description: str


class ExternalHint(_Hint):
    """A calendar entry (campaign, holiday, partner outage) overlapping the window and slice."""

    kind: Literal["external"]
    name: str
    calendar_kind: str
    scope: Labels


class SellerShare(_Part):
    """One seller named by a `SellerHint`."""

    seller: str
    change: float
    """Its count in the window minus its usual count (complaints, violations...)."""


class SellerHint(_Hint):
    """A few sellers carry the change (explain/sellers.py): their `share` of it (more than
    half) and each one's own change; `field` is the event field naming sellers."""

    kind: Literal["sellers"]
    field: str
    share: float
    sellers: tuple[SellerShare, ...]


class RatioHint(_Hint):
    """Why a ratio fell (detect/rate.py `RatioCause`): its numerator against its own usual
    count at this time of day (a drop alerts only when that is low too), and the denominator
    against its usual; `cause` ``numerator_outage_in_surge`` when the denominator was also up
    by half or more."""

    kind: Literal["ratio"]
    cause: Literal["numerator_outage", "numerator_outage_in_surge"]
    numerator: float
    usual_numerator: float
    denominator: float
    usual_denominator: float


Hint = Annotated[
    SliceHint | MetricHint | InterventionHint | ExternalHint | SellerHint | RatioHint,
    Field(discriminator="kind"),
]


class EpisodeSoFar(_Part):
    """The episode's windows so far, summed (sum and count metrics) or averaged (ratio and
    mean): the numbers that drove its score, beside the gap in the metric's unit."""

    since: UtcTime
    """Start of the episode's first anomalous window (the `for` windows before it opened)."""
    windows: int = Field(ge=1)
    """Windows counted (at most the engine's history: the last day)."""
    duration_s: float = Field(ge=0)
    """From `since` to the end of this update's window."""
    aggregate: Literal["sum", "mean"]
    actual: float
    expected: float
    gap: float
    """actual - expected, in the metric's unit."""
    gap_per_hour: float | None
    """The gap per hour of the episode (sum and count metrics only)."""


class SeriesPoint(_Part):
    """One window of the episode slice's recent series (for a chart)."""

    end: UtcTime
    actual: float
    expected: float | None


class AlertRecord(_Part):
    """One update of an alert episode: the value of the alerts topic, one line of an alerts file.

    Records are keyed by `fingerprint` (metric, slice, direction); `episode_id` and `sequence`
    order the updates of one episode. A notifier that silences an update writes a copy with
    status `silenced` and the silences in `silenced_by` (runtime/notifier.py).
    """

    model_config = ConfigDict(
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: Literal[1] = Field(alias="schema")
    """Version of this layout; a new one means readers must learn it first."""
    fingerprint: str = Field(min_length=1)
    episode_id: str = Field(min_length=1)
    sequence: int = Field(ge=0)
    """0 for the record that opened the episode, then one more per update."""
    status: AlertStatus
    reason: AlertReason
    """Why this update was written."""
    metric: str
    description: str
    rule_version: str
    """The rule that raised it, as metric@version."""
    owner: str | None
    runbook: str | None
    dashboard: str | None
    route: str
    """Entry point in the Slack route tree (alert_rules/routes.yaml)."""
    slice: Labels
    """The episode's slice ({} for the whole platform)."""
    direction: Direction
    window_start: UtcTime
    window_end: UtcTime
    value: float | None
    """The episode slice's value in this window; null when it had no point."""
    expected: float | None
    score: float | None
    severity: AlertSeverity
    started_at: UtcTime
    peak_score: float
    firing_slices: tuple[FiringSlice, ...]
    """The window's anomalous slices, most explanatory first (at most the rule's max_slices)."""
    hints: tuple[Hint, ...]
    """Root-cause hints, best first."""
    unit: str | None = Field(None, exclude_if=lambda unit: unit is None)
    """The metric's unit (the rule's `unit`: USD, complaints...); absent when it has none."""
    so_far: EpisodeSoFar | None = Field(None, exclude_if=lambda so_far: so_far is None)
    """The episode so far (new, escalated and slices_changed updates); absent otherwise."""
    series: tuple[SeriesPoint, ...] = Field((), exclude_if=lambda points: not points)
    """The episode slice's last day of windows, oldest first (new and escalated updates)."""
    metric_series: tuple[SeriesPoint, ...] = Field((), exclude_if=lambda points: not points)
    """The whole metric's last day of windows beside a slice episode's `series` (the slice's
    history starts when it first moved; the platform's is always kept)."""
    silenced_by: tuple[str, ...] = Field((), exclude_if=lambda ids: not ids)
    """Ids of the silences that held a `silenced` copy back; absent otherwise."""

    @classmethod
    def parse(cls, data: AlertRecord | Mapping[str, Any] | bytes | str) -> AlertRecord:
        """A record from JSON (text or decoded); an unreadable one raises InvalidEvent with
        reason `not_json` or `invalid_alert_record` and every problem (the dead-letter way)."""
        if isinstance(data, AlertRecord):
            return data
        if isinstance(data, bytes | str):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise InvalidEvent("not_json", str(exc)) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            detail = "; ".join(format_validation_error(exc))
            raise InvalidEvent("invalid_alert_record", detail) from None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values (what `to_json` encodes), keys in wire order."""
        return self.model_dump(mode="json")

    def to_json(self) -> bytes:
        """The record as published: one JSON object, no newline."""
        return orjson.dumps(self.to_dict())

    def __getitem__(self, key: str) -> Any:
        """The JSON value under `key`, as in the JSON object, for code that reads records as
        mappings (``record["episode_id"]``, ``record["hints"][0]["kind"]``); attributes are the
        typed way."""
        return self.to_dict()[key]

    def firing_keys(self) -> frozenset[str]:
        """The firing slices (the alert's own slice when none), formatted: what notification
        dedup compares and what an escalation lists as new."""
        slices = [s.slice for s in self.firing_slices] or [self.slice]
        return frozenset(format_slice(slice_key(s)) for s in slices)
