"""The generated fast path of a schema validator gives the per-property checks' exact verdict."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from stream_guard.config.topics import TopicSpec
from stream_guard.errors import ConfigError, InvalidEvent
from stream_guard.ingest.schema import compile_schema, parse_event_time
from stream_guard.types import iso_utc
from tests.conftest import T0, order

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 7, 2.5, -0.0, float("nan"), float("inf"), float("-inf"), "", "x",
    "approved", [], ["a"], {}, {"k": "v"}, {"k": 1}, 10**30, 10**400, 1e308, -1e308,
    10_000_000, 10_000_000.01, 9_999_999.99,  # around the orders topic's gmv maximum
]


def _verdict(validate: Any, obj: Any) -> tuple[str, Any]:
    try:
        return "ok", validate(obj)
    except InvalidEvent as err:
        return "invalid", (err.reason, err.detail)
    except Exception as err:  # the checks' own crashes (e.g. an unhashable enum value) count too
        return "crash", type(err).__name__


def _mutants(event: dict[str, Any], rng: random.Random) -> list[Any]:
    """`event` with fields removed, replaced by odd values, or extra fields; and non-objects."""
    out: list[Any] = [event, [event], "text", 42, None]
    names = [*event, "extra"]
    for _ in range(400):
        e = dict(event)
        for name in rng.sample(names, rng.randint(1, 3)):
            if rng.random() < 0.25:
                e.pop(name, None)
            else:
                e[name] = rng.choice(ODD_VALUES)
        out.append(e)
    return out


SAMPLES: dict[str, dict[str, Any]] = {
    "orders": order(T0),
    "seller_onboarding": {"event_id": "e", "ts": T0, "seller_id": "s", "region": "EU",
                          "category": "toys", "decision": "approved", "flagged_bad": False},
    "governance_actions": {"event_id": "e", "ts": iso_utc(T0), "action_id": "a",
                           "kind": "takedown", "scope": {"category": "toys"},
                           "description": "d", "owner": "o"},
}


@pytest.mark.parametrize("topic", sorted(SAMPLES))
def test_fast_path_matches_the_checks_on_mutated_events(
    topics: dict[str, TopicSpec], topic: str
) -> None:
    schema = topics[topic].json_schema
    assert schema is not None
    fast, checks = compile_schema(schema), compile_schema(schema, fast=False)
    rng = random.Random(7)
    verdicts = [(_verdict(fast, obj), _verdict(checks, obj))
                for obj in _mutants(SAMPLES[topic], rng)]
    assert all(f == c for f, c in verdicts)
    kinds = {c[0] for _, c in verdicts}
    assert kinds >= {"ok", "invalid"}  # the mutants exercise both outcomes


def test_generated_source_is_attached(topics: dict[str, TopicSpec]) -> None:
    schema = topics["orders"].json_schema
    assert schema is not None
    assert "obj['gmv']" in (compile_schema(schema).__doc__ or "")


def _reference_ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def test_event_time_tables_agree_with_the_general_parser() -> None:
    rng = random.Random(3)
    instants = [rng.randrange(946_684_800_000, 4_102_444_800_000) for _ in range(3000)]
    instants += [T0, T0 + 59_999, 951_782_400_000, 951_868_799_999]  # minute/leap-day edges
    for ms in instants:
        text = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        text += f".{ms % 1000:03d}Z"
        # the first call fills the tables, the second is answered from them
        assert parse_event_time(text) == parse_event_time(text) == ms == _reference_ms(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-03-02T14:10:60.000Z", "bad_timestamp"),  # no leap seconds
        ("2026-02-30T14:10:00.000Z", "bad_timestamp"),
        ("2026-03-02T24:10:00.000Z", "bad_timestamp"),
        ("2026-03-02T14:10:00.000 ", "bad_timestamp"),  # 24 characters, no zone
    ],
)
def test_invalid_times_of_the_common_shape_stay_invalid(text: str, reason: str) -> None:
    parse_event_time("2026-03-02T14:10:00.000Z")  # the minute is in the table
    with pytest.raises(InvalidEvent, match=reason):
        parse_event_time(text)


def test_other_iso_shapes_and_epoch_ms() -> None:
    for text in ["2026-03-02T14:10:07.336+01:00", "2026-03-02 14:10:07.336Z",
                 "2026-03-02T14:10:07.336123Z", "2026-03-02T14:10:07Z"]:
        assert parse_event_time(text) == _reference_ms(text)
    assert parse_event_time(T0) == T0


BOUNDED = {"type": "object", "required": ["ts", "x"], "properties": {
    "ts": {"type": ["string", "integer"], "format": "event-time"},
    "x": {"type": "number", "minimum": 0, "maximum": 10, "exclusiveMinimum": -1,
          "exclusiveMaximum": 11},
    "y": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 5},
}}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("x", 0, None), ("x", 10, None), ("x", 10.0, None), ("x", 5.5, None),
        ("x", -0.01, "out_of_range"), ("x", 10.000001, "out_of_range"),
        ("x", 10**400, "out_of_range"), ("x", 1e308, "out_of_range"),
        ("y", 1, None), ("y", 4, None), ("y", 0, "out_of_range"), ("y", 5, "out_of_range"),
        ("x", float("inf"), "not_finite"), ("x", float("-inf"), "not_finite"),
        ("x", float("nan"), "not_finite"),
        ("x", True, "wrong_type"), ("x", False, "wrong_type"), ("y", True, "wrong_type"),
        ("y", 2.0, "wrong_type"), ("x", "5", "wrong_type"),
    ],
)
def test_bounds_finiteness_and_booleans_give_one_verdict_in_both_layers(
    field: str, value: Any, reason: str | None
) -> None:
    """maximum / minimum and their exclusive forms, non-finite floats and booleans (an int
    subclass to Python, never a number in JSON): the generated predicate and the checks agree."""
    event = {"ts": T0, "x": 1, field: value}
    for validate in (compile_schema(BOUNDED), compile_schema(BOUNDED, fast=False)):
        verdict = _verdict(validate, event)
        assert verdict[0] == ("ok" if reason is None else "invalid"), verdict
        if reason is not None:
            assert verdict[1][0] == reason


def test_the_message_names_the_broken_bound() -> None:
    with pytest.raises(InvalidEvent, match=r"x: 12 is above the maximum 10"):
        compile_schema(BOUNDED)({"ts": T0, "x": 12})
    with pytest.raises(InvalidEvent, match=r"y: 5 is not below the exclusive maximum 5"):
        compile_schema(BOUNDED)({"ts": T0, "x": 1, "y": 5})


@pytest.mark.parametrize("bound", ["10", None, float("nan"), float("inf"), True, [1]])
def test_a_bound_that_is_no_finite_number_is_refused_at_compile_time(bound: Any) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "number", "maximum": bound}}}
    if bound is None:  # an absent bound (YAML `maximum:` with no value) bounds nothing
        assert compile_schema(schema)({"ts": T0, "x": 1e300}) == T0
        return
    with pytest.raises(ConfigError, match="maximum must be a finite number"):
        compile_schema(schema)


def test_every_numeric_field_of_the_event_topics_is_bounded(
    topics: dict[str, TopicSpec]
) -> None:
    """One absurd value must be refused at the edge, not overflow a window sum downstream."""
    for spec in (t for t in topics.values() if not t.internal):
        for name, prop in (spec.json_schema or {}).get("properties", {}).items():
            kinds = prop.get("type", [])
            if {"number", "integer"} & set([kinds] if isinstance(kinds, str) else kinds) and (
                prop.get("format") != "event-time"
            ):
                assert "maximum" in prop or "exclusiveMaximum" in prop, f"{spec.name}.{name}"


def test_gmv_above_the_maximum_is_a_dead_letter_and_at_it_is_an_order(
    topics: dict[str, TopicSpec]
) -> None:
    schema = topics["orders"].json_schema
    assert schema is not None
    validate = compile_schema(schema)
    assert validate(order(T0, gmv=10_000_000)) == T0
    for gmv in (1e12, 1e308):
        with pytest.raises(InvalidEvent, match="out_of_range"):
            validate(order(T0, gmv=gmv))


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59.999Z",  # the common 24-character shape: the minute tables
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59+00:00",  # other shapes: the general parser
        "0001-01-01T00:00:00+14:00",
        "1970-01-01T00:00:00Z",
        "2099-12-31T23:00:00-01:00",  # 2100-01-01T00:00Z
    ],
)
def test_iso_times_get_the_same_range_as_epoch_ms(text: str) -> None:
    for _ in range(2):  # a rejected minute must not enter the tables either
        with pytest.raises(InvalidEvent, match="bad_timestamp"):
            parse_event_time(text)


def test_the_edges_of_the_range() -> None:
    first, end = 946_684_800_000, 4_102_444_800_000
    assert parse_event_time("2000-01-01T00:00:00.000Z") == first == parse_event_time(first)
    assert parse_event_time("2099-12-31T23:59:59.999Z") == end - 1 == parse_event_time(end - 1)
    assert parse_event_time("2000-01-01T01:00:00+01:00") == first
    for ms in (first - 1, end):
        with pytest.raises(InvalidEvent, match="bad_timestamp"):
            parse_event_time(ms)
