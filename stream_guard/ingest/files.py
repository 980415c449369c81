"""File sources: record dumps and plain per-topic JSONL.

A *record dump* has one Kafka record per line: ``{"topic": ..., "key": ..., "value": {...}}``
(``value_raw`` instead of ``value`` holds a payload that was not JSON). A *plain* file holds one
event value per line and takes its topic from the file name (``orders.jsonl``). Every line
comes out as a record, so that nothing in a file is skipped uncounted:

- a line that is not JSON comes out as raw bytes, dead-lettered later as ``bad_json``;
- a blank line, a line holding a JSON value that is not an object (in either mode), an
  envelope without a value: a `Rejected` record, dead-lettered as ``empty_line``,
  ``not_an_object`` or ``missing_envelope``;
- a JSON object without the envelope: a value of the topic the file is named after, the name
  as a `FileTopic`; when that name is no topic the codec says ``missing_envelope`` rather than
  ``unknown_topic 'events'``;
- an envelope whose value is not an object (an array, a string, a number, null): the value
  re-encoded as the payload bytes, so replay decodes it exactly as a live worker decodes the
  message `stream-guard produce` makes of it (an array is a batch of events).

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = Path(tmp) / "events.jsonl"
...     _ = path.write_bytes(b'\\n"hello"\\n{"topic": "orders", "value": [{"gmv": 1}]}\\n')
...     [(r.topic, r.value) for r in iter_dump(path)]  # doctest: +NORMALIZE_WHITESPACE
[('(dump)', Rejected(reason='empty_line', detail='blank line', raw=b'\\n')),
 ('(dump)', Rejected(reason='not_an_object', detail='line holds a JSON str', raw=b'"hello"\\n')),
 ('orders', b'[{"gmv":1}]')]
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

__all__ = ["DUMP_TOPIC", "DumpRecord", "FileTopic", "Record", "Rejected", "count_lines",
           "iter_dump", "iter_records", "write_dump"]

DUMP_TOPIC = "(dump)"
"""Topic reported for a dump line whose envelope cannot be read."""


class DumpRecord(NamedTuple):
    """One record of a file (a named tuple: replay builds a million of them a minute)."""

    topic: str
    key: str | None
    value: Any  # a decoded JSON value, bytes when the payload was not JSON, or a `Rejected`
    origin: str


Record = tuple[str, Any, Any, str]
"""A `DumpRecord` as a plain tuple: (topic, key, value, origin)."""


class Rejected(NamedTuple):
    """The value of a line that holds no record: the codec dead-letters it with `reason`."""

    reason: str
    detail: str
    raw: bytes


class FileTopic(str):
    """A topic taken from a file's name, not from a record envelope (see `Codec.validate`)."""

    __slots__ = ()


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
    return map(DumpRecord._make, iter_records(path, plain_topic))


def iter_records(path: Path, plain_topic: str | None = None) -> Iterator[Record]:
    """`iter_dump`'s records as plain tuples (replay reads a million of them a minute)."""
    fallback = plain_topic or FileTopic(_topic_from_name(path))
    name, loads, enveloped = path.name, orjson.loads, plain_topic is None
    prefix = f"{name}:"  # + the line number: the origin
    with _open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                obj = loads(line)
            except orjson.JSONDecodeError:
                yield _unparsed(line, plain_topic, f"{name}:{lineno}")
                continue
            if type(obj) is not dict:
                yield _not_an_object(obj, line, f"{name}:{lineno}")
            elif enveloped and (topic := obj.get("topic", _MISSING)) is not _MISSING:
                value = obj.get("value", _MISSING)
                if type(value) is not dict or type(topic) is not str:
                    topic, value = _unusual_envelope(obj, line)
                yield topic, obj.get("key"), value, prefix + str(lineno)
            else:
                yield fallback, None, obj, f"{name}:{lineno}"


_MISSING: Any = object()


def _unparsed(line: bytes, plain_topic: str | None, origin: str) -> tuple[str, None, Any, str]:
    """The record of a line that is not JSON: blank (`Rejected`), else its raw bytes."""
    if not line.strip():
        return DUMP_TOPIC, None, Rejected("empty_line", "blank line", line), origin
    return plain_topic or DUMP_TOPIC, None, line, origin


def _not_an_object(obj: Any, line: bytes, origin: str) -> tuple[str, None, Rejected, str]:
    """The record of a line holding a JSON string, number, array or null: no record, no event."""
    return DUMP_TOPIC, None, Rejected("not_an_object", f"line holds a JSON {type(obj).__name__}",
                                      line), origin


def _unusual_envelope(obj: dict[str, Any], line: bytes) -> tuple[str, Any]:
    """Topic and value of an envelope whose value is not an object (or whose topic is no str)."""
    topic = obj["topic"]
    topic = topic if type(topic) is str else str(topic)
    if "value" in obj:
        value = obj["value"]
        return topic, value if type(value) is dict else orjson.dumps(value)
    if "value_raw" in obj:
        return topic, str(obj["value_raw"]).encode()
    return DUMP_TOPIC, Rejected("missing_envelope", "record has a topic but no value", line)


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
