"""Test helpers: a checker for the JSON-schema subset of topics/*.yaml, and event-time parsing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

TOPICS_DIR = Path(__file__).resolve().parents[3] / "topics"
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
}


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with `value` against one topic schema (the subset topics/*.yaml uses)."""
    if not isinstance(value, dict):
        return ["not an object"]
    errors = [f"missing {name}" for name in schema["required"] if name not in value]
    for name, prop in schema["properties"].items():
        if name in value:
            errors += [f"{name}: {e}" for e in _field_errors(prop, value[name])]
    return errors


def _field_errors(prop: dict[str, Any], item: Any) -> list[str]:
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    allowed = tuple(t for k in kinds for t in _TYPES[k])
    if not isinstance(item, allowed) or (isinstance(item, bool) and "boolean" not in kinds):
        return [f"type {type(item).__name__}, want {kinds}"]
    errors = []
    if "enum" in prop and item not in prop["enum"]:
        errors.append(f"{item!r} not in enum")
    if "minimum" in prop and item < prop["minimum"]:
        errors.append(f"{item} < minimum")
    if "minLength" in prop and len(item) < prop["minLength"]:
        errors.append("too short")
    if prop.get("format") == "event-time" and isinstance(item, str) and not _zoned(item):
        errors.append(f"bad event time {item!r}")
    if "additionalProperties" in prop and isinstance(item, dict):
        errors += [e for v in item.values() for e in _field_errors(prop["additionalProperties"], v)]
    return errors


def load_topic_specs() -> dict[str, dict[str, Any]]:
    """topics/*.yaml of the event topics, by name."""
    specs = (yaml.safe_load(p.read_text()) for p in sorted(TOPICS_DIR.glob("*.yaml")))
    return {s["name"]: s for s in specs if "schema" in s}


def _zoned(text: str) -> bool:
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def ts_ms(ts: str | int) -> int:
    """Event time of a `ts` field in epoch ms."""
    if isinstance(ts, int):
        return ts
    return round(datetime.fromisoformat(ts).timestamp() * 1000)
