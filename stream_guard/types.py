"""Frozen domain types shared by every stage of the engine.

A *slice* is a tuple of ``(dimension, value)`` pairs sorted by dimension; ``()`` is the global
series. Timestamps inside the engine are integer epoch milliseconds (``*_ms``); they become
ISO-8601 UTC strings only in records that leave the engine.

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
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "AlertRecord",
    "Direction",
    "Event",
    "HintKind",
    "MetricPoint",
    "RootCauseHint",
    "Score",
    "SliceKey",
    "format_slice",
    "is_ancestor",
    "iso_utc",
    "slice_dict",
    "slice_key",
]

SliceKey = tuple[tuple[str, str], ...]
Direction = Literal["up", "down"]
HintKind = Literal["slice", "metric", "intervention", "external"]


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


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with a `Z` (milliseconds kept only when non-zero)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"


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


AlertRecord = dict[str, Any]
"""The JSON alert record written to files and to the alerts topic (see alert/record.py)."""
