"""File sources: record dumps and plain per-topic JSONL.

A *record dump* has one Kafka record per line: ``{"topic": ..., "key": ..., "value": {...}}``
(``value_raw`` instead of ``value`` holds a payload that was not JSON). A *plain* file holds one
event value per line and takes its topic from the file name (``orders.jsonl``). Lines that are
not JSON at all still come out, as raw bytes, so the engine dead-letters them with their line.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

__all__ = ["DUMP_TOPIC", "DumpRecord", "count_lines", "iter_dump", "write_dump"]

DUMP_TOPIC = "(dump)"
"""Topic reported for a dump line whose envelope cannot be read."""


class DumpRecord(NamedTuple):
    """One record of a file (a named tuple: replay builds a million of them a minute)."""

    topic: str
    key: str | None
    value: Any  # a decoded JSON value, or bytes when the payload was not JSON
    origin: str


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _topic_from_name(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".ndjson"):
        name = name.removesuffix(suffix)
    return name


def iter_dump(path: Path, plain_topic: str | None = None) -> Iterator[DumpRecord]:
    """Records of one file. `plain_topic` forces plain mode; otherwise each line decides."""
    fallback = plain_topic or _topic_from_name(path)
    name, loads = path.name, orjson.loads
    new = tuple.__new__  # DumpRecord._make without its length check: always 4 fields here
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                if line.strip():  # blank lines are skipped, anything else is a bad record
                    yield new(DumpRecord, (fallback if plain_topic else DUMP_TOPIC, None, line,
                                           f"{name}:{lineno}"))
                continue
            if plain_topic is None and type(obj) is dict and "topic" in obj:
                topic = obj["topic"]
                value = obj["value"] if "value" in obj else str(obj.get("value_raw", "")).encode()
                yield new(DumpRecord, (topic if type(topic) is str else str(topic),
                                       obj.get("key"), value, f"{name}:{lineno}"))
            else:
                yield new(DumpRecord, (fallback, None, obj, f"{name}:{lineno}"))


def count_lines(paths: Iterable[Path]) -> int:
    """Number of lines (for progress bars); fast, reads in big blocks."""
    total = 0
    for path in paths:
        with _open(path) as fh:
            while block := fh.read(1 << 20):
                total += block.count(b"\n")
    return total


def write_dump(path: Path, records: Iterable[tuple[str, str | None, Any]]) -> int:
    """Writes `(topic, key, value)` records as a record dump; returns how many."""
    n = 0
    with path.open("wb") as fh:
        for topic, key, value in records:
            fh.write(orjson.dumps({"topic": topic, "key": key, "value": value}) + b"\n")
            n += 1
    return n
