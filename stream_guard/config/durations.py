"""Durations written the way people write them in YAML: ``90s``, ``5m``, ``1h``, ``7d``.

A bare number is seconds. Whatever the spelling, a duration is a finite length of time that a
`timedelta` can hold: NaN, infinities, negative numbers and ``1000000000d`` are refused with a
ValueError (never an OverflowError escaping as a traceback). Fields narrow the range further with
`between` (a window of a week, a lateness of a day), so an absurd value names its field.

>>> parse_duration("15m")
datetime.timedelta(seconds=900)
>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> parse_duration("soon")
Traceback (most recent call last):
...
ValueError: 'soon' is not a duration like 90s, 5m, 1h, 7d
>>> parse_duration(float("inf"))
Traceback (most recent call last):
...
ValueError: must be between 0s and 3650d, not inf
>>> parse_duration("2d", high=timedelta(days=1))
Traceback (most recent call last):
...
ValueError: must be between 0s and 1d, not '2d'
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from functools import partial
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["LONGEST", "Duration", "RepeatInterval", "between", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

LONGEST = timedelta(days=3650)
"""No setting of stream-guard means anything beyond ten years; fields cap far lower."""


def parse_duration(
    value: Any, low: timedelta = timedelta(0), high: timedelta = LONGEST
) -> timedelta:
    """`value` (``5m``, a number of seconds or a timedelta) if it lies in ``[low, high]``."""
    seconds = _seconds(value)
    # Written so that NaN fails too: every comparison with NaN is false.
    if not low.total_seconds() <= seconds <= high.total_seconds():
        span = f"{format_duration(low)} and {format_duration(high)}"
        raise ValueError(f"must be between {span}, not {_shown(value)}")
    return timedelta(seconds=seconds)


def _seconds(value: Any) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond any float
            return math.inf
    text = str(value).strip()
    if not text or _PART.sub("", text):
        raise ValueError(f"{_shown(value)} is not a duration like 90s, 5m, 1h, 7d")
    return math.fsum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_duration(td: timedelta) -> str:
    """The shortest exact spelling: ``format_duration(timedelta(hours=2)) == "2h"``."""
    seconds = int(td.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // int(_UNITS[unit])}{unit}"
    return f"{seconds}s"


def between(low: timedelta, high: timedelta) -> BeforeValidator:
    """Metadata for ``Annotated[Duration, between(low, high)]``: the field's sane range."""
    return BeforeValidator(partial(parse_duration, low=low, high=high))


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta field that accepts ``5m``-style strings."""

RepeatInterval = Annotated[Duration, between(timedelta(minutes=1), timedelta(days=30))]
"""How often a still-firing alert is sent again (a rule's `alert.repeat`, a route's
`repeat_interval`): zero would mean every window, over a month never."""
