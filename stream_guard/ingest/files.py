"""File sources: record dumps and plain per-topic JSONL.

A *record dump* has one Kafka record per line: ``{"topic": ..., "key": ..., "value": {...}}``
(``value_raw`` instead of ``value`` holds a payload that was not JSON). A *plain* file holds one
event value per line and takes its topic from the file name (``orders.jsonl``). Lines that are
not JSON at all still come out, as raw bytes, so the engine dead-letters them with their line.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["DUMP_TOPIC", "DumpRecord", "count_lines", "iter_dump", "write_dump"]

DUMP_TOPIC = "(dump)"
"""Topic reported for a dump line whose envelope cannot be read."""


@dataclass(frozen=True, slots=True)
class DumpRecord:
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
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            origin = f"{path.name}:{lineno}"
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield DumpRecord(fallback if plain_topic else DUMP_TOPIC, None, line, origin)
                continue
            if plain_topic is None and isinstance(obj, dict) and "topic" in obj:
                value = obj["value"] if "value" in obj else str(obj.get("value_raw", "")).encode()
                yield DumpRecord(str(obj["topic"]), obj.get("key"), value, origin)
            else:
                yield DumpRecord(fallback, None, obj, origin)


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
