"""Validation at the edge: every kind of bad event becomes a dead letter with its reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from stream_guard.errors import InvalidEvent
from stream_guard.ingest.codec import RAW_LIMIT, Codec
from stream_guard.ingest.files import DUMP_TOPIC, FileTopic, Rejected
from tests.conftest import T0, order


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("gmv"), "missing_field"),
        (lambda e: e.update(gmv="12.5"), "wrong_type"),
        (lambda e: e.update(gmv=True), "wrong_type"),
        (lambda e: e.update(gmv=-1), "out_of_range"),
        (lambda e: e.update(ts="yesterday"), "bad_timestamp"),
        (lambda e: e.update(ts="2026-03-02T10:00:00"), "bad_timestamp"),
        (lambda e: e.update(ts=1_772_409_600), "bad_timestamp"),  # seconds, not ms
        (lambda e: e.update(region=""), "empty_value"),
        (lambda e: e.pop("ts"), "missing_field"),
    ],
)
def test_invalid_events_are_dead_lettered_with_reason(
    codec: Codec, mutate: Callable[[dict[str, Any]], object], reason: str
) -> None:
    event = order(T0)
    mutate(event)
    good, dead = codec.decode("orders", orjson.dumps(event), origin="orders:0@1")
    assert good == []
    assert [(d.reason, d.origin, d.topic) for d in dead] == [(reason, "orders:0@1", "orders")]


def test_non_finite_numbers_are_invalid(codec: Codec) -> None:
    # JSON text cannot carry inf/NaN (orjson refuses them); decoded values from files can.
    with pytest.raises(InvalidEvent, match="not_finite"):
        codec.validate("orders", order(T0, gmv=float("nan")))
    assert codec.decode("orders", b'{"gmv": NaN}', "x")[1][0].reason == "bad_json"


def test_unparseable_json_and_non_objects(codec: Codec) -> None:
    assert codec.decode("orders", b"{not json", "x")[1][0].reason == "bad_json"
    assert codec.decode("orders", b"42", "x")[1][0].reason == "not_an_object"
    assert codec.decode("nope", orjson.dumps(order(T0)), "x")[1][0].reason == "unknown_topic"


def test_extra_fields_allowed_and_both_time_formats(codec: Codec) -> None:
    iso = order(T0 + 120, app_version="9.1")
    epoch = order(T0, ts=T0 + 120)
    for event in (iso, epoch):
        good, dead = codec.decode("orders", orjson.dumps(event), "x")
        assert dead == [] and good[0].ts_ms == T0 + 120


def test_batched_payloads_keep_good_events_around_bad_ones(codec: Codec) -> None:
    batch = [order(T0, 1), order(T0, 2, gmv=-5), order(T0, 3)]
    for payload in (orjson.dumps(batch), b"\n".join(orjson.dumps(e) for e in batch)):
        good, dead = codec.decode("orders", payload, "orders:1@7")
        assert [e.fields["order_id"] for e in good] == ["ord-1", "ord-3"]
        assert [(d.reason, d.origin) for d in dead] == [("out_of_range", "orders:1@7#1")]


def test_dead_letter_raw_payload_is_bounded(codec: Codec) -> None:
    huge = b"x" * (RAW_LIMIT * 3)
    dead = codec.decode("orders", huge, "x")[1][0]
    assert len(dead.raw) == RAW_LIMIT and dead.to_json()["reason"] == "bad_json"


def test_lines_the_file_source_refused_keep_their_reason(codec: Codec) -> None:
    rejected = Rejected("empty_line", "blank line", b"  \n")
    with pytest.raises(InvalidEvent, match="empty_line"):
        codec.validate(DUMP_TOPIC, rejected)
    err = InvalidEvent("empty_line", "blank line")
    assert codec.dead_letter(DUMP_TOPIC, "f:3", err, rejected).raw == "  \n"
    with pytest.raises(InvalidEvent, match=r"missing_envelope: .* 'events' is no topic"):
        codec.validate(FileTopic("events"), order(T0))
    assert codec.validate(FileTopic("orders"), order(T0)) == T0


def _values_by_definition(codec: Codec, topic: str, raw: bytes, origin: str) -> Any:
    """`Codec.values` spelled out: parse, then validate each value (the general loop)."""
    try:
        values = codec.parse(raw)
    except InvalidEvent as err:
        return [], [codec.dead_letter(topic, origin, err, raw)]
    valid, dead = [], []
    for i, value in enumerate(values):
        try:
            valid.append((codec.validate(topic, value), value))
        except InvalidEvent as err:
            where = origin if len(values) == 1 else f"{origin}#{i}"
            dead.append(codec.dead_letter(topic, where, err, value))
    return valid, dead


@pytest.mark.parametrize("topic", ["orders", "no_such_topic"])
@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(order(T0)),
        orjson.dumps({**order(T0), "gmv": -1}),
        orjson.dumps([order(T0), {**order(T0), "ts": "x"}, 3, order(T0 + 1)]),
        orjson.dumps([order(T0)]),
        orjson.dumps([{**order(T0), "gmv": None}]),
        b"[]",
        b"null",
        b'"text"',
        b"{not json",
        orjson.dumps(order(T0)) + b"\n" + orjson.dumps({**order(T0), "gmv": "1"}) + b"\n",
        b'{"a": 1}\n{oops\n',
    ],
)
def test_values_fast_path_gives_the_general_outcome(codec: Codec, topic: str, raw: bytes) -> None:
    assert codec.values(topic, raw, "p:7") == _values_by_definition(codec, topic, raw, "p:7")
