"""Compiles a topic's JSON Schema (the subset topics/ uses) into a fast validator.

A general JSON Schema library costs tens of microseconds per event; the subset here (types,
required, enum, minimum / maximum and their exclusive forms, minLength, an event-time format,
typed additionalProperties) is checked in well under a microsecond. An unsupported keyword is
refused when the schema is compiled, so a schema can never be silently half-enforced.

Two layers, one verdict. Per-property checks (`_compile_property`) are the definition: they run
in schema order and raise the precise `InvalidEvent`. In front of them, a predicate generated
from the same schema as one Python expression (one function, no per-property calls) accepts an
event only when every check would pass; anything else, or anything odd (a missing key, an
unhashable enum value), goes through the checks, so a rejected event gets exactly the reason and
detail it always got. The predicate can only be stricter than the checks, never looser.

>>> check = compile_schema({"type": "object", "required": ["ts", "gmv"],
...     "properties": {"ts": {"type": ["string", "integer"], "format": "event-time"},
...                    "gmv": {"type": "number", "minimum": 0}}})
>>> check({"ts": "2026-03-02T14:10:00.120Z", "gmv": 12.5, "extra": 1})
1772460600120
>>> check({"ts": 1772460600120, "gmv": -1})
Traceback (most recent call last):
...
stream_guard.errors.InvalidEvent: out_of_range: gmv: -1 is below the minimum 0

Numbers are finite and never booleans (``True`` is an ``int`` to Python, not to JSON), and event
times lie in [2000-01-01, 2100-01-01) whichever way they are written: one absurd value (a GMV of
1e308, a year 9999) is refused here rather than overflowing a sum or a window downstream.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from stream_guard.errors import ConfigError, InvalidEvent

__all__ = ["Validator", "compile_schema", "parse_event_time"]

Validator = Callable[[Mapping[str, Any]], int]
"""Validates an event value and returns its event time in epoch milliseconds."""

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_ANNOTATIONS = {"description", "title", "$schema", "$comment", "examples"}
_OBJECT_KEYWORDS = {"type", "required", "properties", "additionalProperties"}
# Numeric bounds: keyword -> (the comparison that REJECTS a value, as Python source; wording)
_BOUNDS: dict[str, tuple[str, str]] = {
    "minimum": ("<", "below the minimum"),
    "exclusiveMinimum": ("<=", "not above the exclusive minimum"),
    "maximum": (">", "above the maximum"),
    "exclusiveMaximum": (">=", "not below the exclusive maximum"),
}
_REJECTS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_PROPERTY_KEYWORDS = {"type", "enum", "minLength", "format", "additionalProperties", *_BOUNDS}
_TS_MIN_MS = 946_684_800_000  # 2000-01-01: smaller integers are seconds or garbage, not event ms
_TS_MAX_MS = 4_102_444_800_000  # 2100-01-01


def parse_event_time(value: object) -> int:
    """Event time as epoch milliseconds, from ISO-8601 with a zone or integer epoch ms.

    >>> parse_event_time("2026-03-02T14:10:00+01:00")
    1772457000000
    >>> parse_event_time("2026-03-02T14:10:00")
    Traceback (most recent call last):
    ...
    stream_guard.errors.InvalidEvent: bad_timestamp: ts: '2026-03-02T14:10:00' has no time zone
    """
    # The shape producers send (``2026-03-02T14:10:07.336Z``) is answered from small tables:
    # the minute prefix, the ``SS.`` and the ``fffZ`` of the tail. They hold only what the
    # general parser below computed for the same text, so the result is the same, 3x faster.
    # (The generated validators inline this: `_TS_FAST`.)
    if type(value) is str and len(value) == 24:
        try:
            return _MINUTES[value[:17]] + _SECONDS[value[17:20]] + _MILLIS[value[20:]]
        except KeyError:
            pass  # a new minute or tail (or not that shape): parse it in full, outside `except`
        return _learn_event_time(value)
    return _parse_event_time(value)


def _parse_event_time(value: object) -> int:
    """The general parser. Both forms get the same absolute range: the tables of
    `parse_event_time` only learn what this returned, so the range costs the fast path nothing."""
    if type(value) is int:
        if not _TS_MIN_MS <= value < _TS_MAX_MS:
            raise InvalidEvent("bad_timestamp", f"ts: {value} is not epoch milliseconds")
        return value
    if type(value) is not str:
        raise InvalidEvent("wrong_type", f"ts: expected ISO-8601 string or epoch ms, got {value!r}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent("bad_timestamp", f"ts: {value[:64]!r} is not ISO-8601") from None
    if dt.tzinfo is None:
        raise InvalidEvent("bad_timestamp", f"ts: {value[:64]!r} has no time zone")
    ms = round(dt.timestamp() * 1000)
    if not _TS_MIN_MS <= ms < _TS_MAX_MS:
        raise InvalidEvent("bad_timestamp", f"ts: {value[:64]!r} is not in [2000, 2100)")
    return ms


_MILLIS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d\.\d{3}Z", re.ASCII)
_MINUTES: dict[str, int] = {}  # "2026-03-02T14:10:" -> epoch ms of that minute
_SECONDS = {f"{s:02d}.": s * 1000 for s in range(60)}  # "07." -> 7000
_MILLIS = {f"{f:03d}Z": f for f in range(1000)}  # "336Z" -> 336: with _SECONDS, every tail
_MINUTES_KEPT = 100_000  # ~10 weeks of minutes; then the table starts over (bounded memory)


def _learn_event_time(value: str) -> int:
    """Parses `value` in full, remembering its minute when it has the common shape.

    For such text the general parser's result is exactly minute + tail: the float in
    ``round(timestamp() * 1000)`` is off by far less than half a millisecond.
    """
    ms = _parse_event_time(value)
    if _MILLIS_UTC.fullmatch(value) is not None:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        _MINUTES[value[:17]] = ms - _SECONDS[value[17:20]] - _MILLIS[value[20:]]
    return ms


def _compile_property(name: str, spec: Mapping[str, Any]) -> Callable[[Any], None]:
    unknown = set(spec) - _PROPERTY_KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ConfigError(f"property {name!r}: unsupported schema keywords {sorted(unknown)}")
    kinds = spec.get("type", [])
    allowed = tuple(t for k in ([kinds] if isinstance(kinds, str) else kinds) for t in _TYPES[k])
    enum = frozenset(spec["enum"]) if "enum" in spec else None
    bounds = _bounds_of(name, spec)
    min_len = spec.get("minLength", 0)
    values_of = spec.get("additionalProperties")
    values_kind = values_of["type"] if isinstance(values_of, dict) else None
    value_types = _TYPES[values_kind] if values_kind else None

    def check(v: Any) -> None:
        if allowed and type(v) not in allowed:
            raise InvalidEvent("wrong_type", f"{name}: expected {kinds}, got {type(v).__name__}")
        if type(v) is float and not math.isfinite(v):
            raise InvalidEvent("not_finite", f"{name}: {v} is not a finite number")
        if enum is not None and v not in enum:
            raise InvalidEvent("not_in_enum", f"{name}: {v!r} is not one of {sorted(enum)}")
        for keyword, bound in bounds:
            op, wording = _BOUNDS[keyword]
            if _REJECTS[op](v, bound):
                raise InvalidEvent("out_of_range", f"{name}: {v} is {wording} {bound}")
        if min_len and len(v) < min_len:
            raise InvalidEvent("empty_value", f"{name}: shorter than {min_len}")
        if value_types is not None:
            for key, item in v.items():
                if type(item) not in value_types:
                    raise InvalidEvent("wrong_type", f"{name}.{key}: expected {values_kind}")

    return check


def _bounds_of(name: str, spec: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The numeric bounds of a property, in `_BOUNDS` order; a bound that is no finite number
    would compare as an error or never reject, so it is refused at compile time."""
    bounds = [(keyword, spec[keyword]) for keyword in _BOUNDS if spec.get(keyword) is not None]
    for keyword, bound in bounds:
        if type(bound) not in (int, float) or not math.isfinite(bound):
            raise ConfigError(
                f"property {name!r}: {keyword} must be a finite number, got {bound!r}")
    return bounds


def compile_schema(schema: Mapping[str, Any], fast: bool = True) -> Validator:
    """A validator for objects of `schema`; it returns the event time (``ts``) in epoch ms.

    `fast=False` gives the per-property checks alone: the definition the fast path must match.
    """
    unknown = set(schema) - _OBJECT_KEYWORDS - _ANNOTATIONS
    if unknown or schema.get("type") != "object":
        raise ConfigError(f"schema must be an object schema; unsupported: {sorted(unknown)}")
    required = tuple(schema.get("required", ()))
    props = schema.get("properties", {})
    checked = {name: spec for name, spec in props.items() if spec.get("format") != "event-time"}
    checks = tuple(
        (name, _compile_property(name, spec), name in required) for name, spec in checked.items()
    )
    missing_required = [r for r in required if r not in props]
    if missing_required:
        raise ConfigError(f"required fields without a property schema: {missing_required}")

    def validate_slowly(obj: Mapping[str, Any]) -> int:
        if type(obj) is not dict:
            raise InvalidEvent("not_an_object", f"value is a JSON {type(obj).__name__}")
        for name, check, is_required in checks:
            v = obj.get(name, _MISSING)
            if v is _MISSING:
                if is_required:
                    raise InvalidEvent("missing_field", f"{name}: required field is missing")
                continue
            check(v)
        if "ts" not in obj:
            raise InvalidEvent("missing_field", "ts: required field is missing")
        return parse_event_time(obj["ts"])

    if not fast:
        return validate_slowly
    return _generate(str(schema.get("title", "")), checked, set(required), validate_slowly)


_MISSING = object()


def _generate(
    title: str, props: Mapping[str, Mapping[str, Any]], required: set[str], slowly: Validator
) -> Validator:
    """`slowly` behind a generated fast path (see the module docstring)."""
    env: dict[str, Any] = {"_MISSING": _MISSING, "_isfinite": math.isfinite,
                           "_ts": parse_event_time, "_slowly": slowly, "_MINUTES": _MINUTES,
                           "_SECONDS": _SECONDS, "_MILLIS": _MILLIS, "_TS_MIN_MS": _TS_MIN_MS,
                           "_TS_MAX_MS": _TS_MAX_MS}
    terms = [_term(name, spec, name in required, env) for name, spec in props.items()]
    source = _VALIDATE.format(terms="\n            and ".join(["type(obj) is dict", *terms]))
    # a template filled with names by repr and constants by name: nothing external
    exec(compile(source, f"<validator {title}>", "exec"), env)
    validate: Validator = env["validate"]
    validate.__doc__ = "Generated validator; its source:\n" + source
    return validate


_VALIDATE = """\
def validate(obj):
    try:
        if ({terms}):
            ts = obj["ts"]
            if type(ts) is str:
                if len(ts) == 24:
                    try:
                        return _MINUTES[ts[:17]] + _SECONDS[ts[17:20]] + _MILLIS[ts[20:]]
                    except KeyError:
                        pass  # a new minute (or not that shape): `_ts` learns it
            elif type(ts) is int and _TS_MIN_MS <= ts < _TS_MAX_MS:
                return ts
            return _ts(ts)
    except (KeyError, TypeError):
        pass
    return _slowly(obj)
"""
"""The fast path, `parse_event_time`'s tables inlined: a KeyError (missing field) or TypeError
(e.g. unhashable enum value, a comparison across types) sends the event to the checks, which
raise the precise error."""


def _term(name: str, spec: Mapping[str, Any], required: bool, env: dict[str, Any]) -> str:
    """A condition, true only when `_compile_property`'s check passes, on field `name`."""
    i = len(env)
    kinds = spec.get("type", [])
    allowed = tuple(t for k in ([kinds] if isinstance(kinds, str) else kinds) for t in _TYPES[k])
    conds = []  # about `@`, the value: the first use fetches it, later ones read `v`
    if allowed:
        env[f"_t{i}"] = allowed
        conds.append("type(@) is str" if allowed == (str,) else f"type(@) in _t{i}")
    if not allowed or float in allowed:
        conds.append("(type(@) is not float or _isfinite(@))")
    if "enum" in spec:
        env[f"_e{i}"] = frozenset(spec["enum"])
        conds.append(f"@ in _e{i}")
    for n, (keyword, bound) in enumerate(_bounds_of(name, spec)):
        env[f"_b{i}_{n}"] = bound
        conds.append(f"not @ {_BOUNDS[keyword][0]} _b{i}_{n}")
    min_len = int(spec.get("minLength", 0))
    if min_len:  # for a value already known to be a str, being true is len >= 1
        conds.append("@" if min_len == 1 and allowed == (str,) else f"len(@) >= {min_len}")
    values_of = spec.get("additionalProperties")
    if isinstance(values_of, dict) and values_of.get("type"):
        env[f"_a{i}"] = _TYPES[values_of["type"]]
        conds.append(f"type(@) is dict and all(type(x) in _a{i} for x in @.values())")
    if not required:
        test = " and ".join(conds).replace("@", "v") or "True"
        return f"((v := obj.get({name!r}, _MISSING)) is _MISSING or ({test}))"
    fetch = f"(v := obj[{name!r}])"
    if not conds:
        return f"{fetch} is not _MISSING"
    return "(" + " and ".join([conds[0].replace("@", fetch, 1).replace("@", "v"),
                                *(c.replace("@", "v") for c in conds[1:])]) + ")"
