"""Record dumps and plain JSONL: every line comes out, with its line as origin, and every line
that holds no event is dead-lettered by the engine with a reason that says what is wrong."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from stream_guard.errors import InvalidEvent
from stream_guard.ingest.codec import Codec, DeadLetter
from stream_guard.ingest.files import DUMP_TOPIC, DumpRecord, Rejected, iter_dump
from tests.conftest import T0, order

LINES = [
    b'{"topic": "orders", "key": "s1", "value": {"gmv": 1.5}}',
    b"",
    b"   ",
    b'{"topic": "orders", "key": null, "value_raw": "<html>502</html>"}',
    b"not json at all",
    b'{"topic": 7, "value": [1, 2]}',
    b'{"gmv": 2}',
]


def _write(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_dump_lines_become_records_with_their_line_numbers(tmp_path: Path) -> None:
    for name in ("orders.jsonl", "orders.jsonl.gz"):
        records = list(iter_dump(_write(tmp_path / name, LINES)))
        assert [tuple(r) for r in records] == [
            ("orders", "s1", {"gmv": 1.5}, f"{name}:1"),
            (DUMP_TOPIC, None, Rejected("empty_line", "blank line", b"\n"), f"{name}:2"),
            (DUMP_TOPIC, None, Rejected("empty_line", "blank line", b"   \n"), f"{name}:3"),
            ("orders", None, b"<html>502</html>", f"{name}:4"),  # value_raw: bytes to decode
            (DUMP_TOPIC, None, b"not json at all\n", f"{name}:5"),  # dead-lettered later
            ("7", None, b"[1,2]", f"{name}:6"),  # not an object: the payload, as produced
            ("orders", None, {"gmv": 2}, f"{name}:7"),  # no envelope: topic from the file name
        ]


def test_plain_mode_takes_every_line_as_a_value_of_one_topic(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", LINES)
    records = list(iter_dump(path, plain_topic="listings"))
    assert [r.topic for r in records] == ["listings", DUMP_TOPIC, DUMP_TOPIC, "listings",
                                          "listings", "listings", "listings"]
    assert records[0] == DumpRecord("listings", None, {"topic": "orders", "key": "s1",
                                                       "value": {"gmv": 1.5}}, "x.jsonl:1")
    assert records[4].value == b"not json at all\n"


def _ingest(codec: Codec, path: Path) -> tuple[list[str], list[DeadLetter]]:
    """The events' topics and the dead letters of a file, decoded as the source stage does:
    bytes (a payload) through `Codec.decode`, a decoded value through `Codec.validate`."""
    events: list[str] = []
    dead: list[DeadLetter] = []
    for topic, _key, value, origin in iter_dump(path):
        if isinstance(value, bytes | str):
            good, bad = codec.decode(topic, value, origin)
            events += [e.topic for e in good]
            dead += bad
            continue
        try:
            codec.validate(topic, value)
            events.append(topic)
        except InvalidEvent as err:
            dead.append(codec.dead_letter(topic, origin, err, value))
    return events, dead


BAD_LINES = [  # (line of a record dump named events.jsonl, reason)
    (b"", "empty_line"),
    (b" \t ", "empty_line"),
    (b'"hello"', "not_an_object"),
    (b"42", "not_an_object"),
    (b"[]", "not_an_object"),
    (b"null", "not_an_object"),
    (orjson.dumps(order(T0)), "missing_envelope"),  # 'events' is no topic
    (b'{"topic": "orders", "key": "s1"}', "missing_envelope"),
    (b'{"topic": "orderz", "value": {}}', "unknown_topic"),
    (b'{"topic": "orders", "value": "hello"}', "not_an_object"),  # as live: a JSON str payload
    (b'{"topic": "orders", "value": null}', "not_an_object"),
    (b'{"topic": "orders", "value": {"gmv": NaN}}', "bad_json"),
    (b"\xff\xfe", "bad_json"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_every_line_without_an_event_is_dead_lettered_with_its_reason(
    codec: Codec, tmp_path: Path, line: bytes, reason: str
) -> None:
    path = _write(tmp_path / "events.jsonl", [orjson.dumps(
        {"topic": "orders", "key": "s1", "value": order(T0)}), line])
    events, dead = _ingest(codec, path)
    assert [(d.origin, d.reason) for d in dead] == [("events.jsonl:2", reason)]
    assert events == ["orders"]


def test_dead_letters_keep_the_line_bounded(codec: Codec, tmp_path: Path) -> None:
    path = _write(tmp_path / "events.jsonl", [b"", b"[" + b"1," * 5000 + b"1]"])
    assert [d.raw for d in _ingest(codec, path)[1]] == ["\n", "[" + "1," * 2047 + "1"]


def test_an_array_value_is_a_batch_as_a_live_worker_reads_it(
    codec: Codec, tmp_path: Path
) -> None:
    batch = [order(T0, 1), order(T0, 2, gmv="1"), order(T0, 3)]
    path = _write(tmp_path / "events.jsonl", [orjson.dumps({"topic": "orders", "value": batch})])
    events, dead = _ingest(codec, path)
    assert events == ["orders", "orders"]
    assert [(d.origin, d.reason) for d in dead] == [("events.jsonl:1#1", "wrong_type")]


def test_a_file_named_after_a_topic_holds_plain_values(codec: Codec, tmp_path: Path) -> None:
    path = _write(tmp_path / "orders.jsonl", [orjson.dumps(order(T0, 1)), b"", b"{}"])
    events, dead = _ingest(codec, path)
    assert events == ["orders"]
    assert [(d.topic, d.origin, d.reason) for d in dead] == [
        (DUMP_TOPIC, "orders.jsonl:2", "empty_line"), ("orders", "orders.jsonl:3", "missing_field")]
