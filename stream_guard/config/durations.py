"""Durations written the way people write them in YAML: ``90s``, ``5m``, ``1h``, ``7d``.

>>> parse_duration("15m")
datetime.timedelta(seconds=900)
>>> parse_duration("1h30m")
datetime.timedelta(seconds=5400)
>>> parse_duration("soon")
Traceback (most recent call last):
...
ValueError: 'soon' is not a duration like 90s, 5m, 1h, 7d
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["Duration", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    text = str(value).strip()
    if not text or _PART.sub("", text):
        raise ValueError(f"{value!r} is not a duration like 90s, 5m, 1h, 7d")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(td: timedelta) -> str:
    """The shortest exact spelling: ``format_duration(timedelta(hours=2)) == "2h"``."""
    seconds = int(td.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // int(_UNITS[unit])}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta field that accepts ``5m``-style strings."""
