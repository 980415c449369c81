"""The generated fast path of a schema validator gives the per-property checks' exact verdict."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from stream_guard.config.topics import TopicSpec
from stream_guard.errors import InvalidEvent
from stream_guard.ingest.schema import compile_schema, parse_event_time
from stream_guard.types import iso_utc
from tests.conftest import T0, order

ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 7, 2.5, -0.0, float("nan"), float("inf"), float("-inf"), "", "x",
    "approved", [], ["a"], {}, {"k": "v"}, {"k": 1}, 10**30,
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
