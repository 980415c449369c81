"""Record dumps and plain JSONL: every non-blank line comes out, with its line as origin."""

from __future__ import annotations

import gzip
from pathlib import Path

from stream_guard.ingest.files import DUMP_TOPIC, DumpRecord, iter_dump

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
            ("orders", None, b"<html>502</html>", f"{name}:4"),  # value_raw: bytes to decode
            (DUMP_TOPIC, None, b"not json at all\n", f"{name}:5"),  # dead-lettered later
            ("7", None, [1, 2], f"{name}:6"),
            ("orders", None, {"gmv": 2}, f"{name}:7"),  # no envelope: topic from the file name
        ]


def test_plain_mode_takes_every_line_as_a_value_of_one_topic(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.jsonl", LINES)
    records = list(iter_dump(path, plain_topic="listings"))
    assert {r.topic for r in records} == {"listings"}
    assert records[0] == DumpRecord("listings", None, {"topic": "orders", "key": "s1",
                                                       "value": {"gmv": 1.5}}, "x.jsonl:1")
    assert records[2].value == b"not json at all\n"
