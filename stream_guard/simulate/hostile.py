"""Hostile input: a seeded harness that injects bad records into a simulated record dump.

A *kind* of bad input is a small pure function of a valid record (``{"topic", "key", "value"}``)
and a random generator, returning the dump lines to inject (bytes: a line need not be JSON, nor
UTF-8), together with the `Outcome` replay must give every one of those lines: dead-lettered
with a reason, accepted, dropped as a duplicate, counted late or folded into an ``other``
slice. `KINDS` is the table of them; `inject` places a few of each kind next to randomly chosen
records of a dump (the choice and the content are fixed by the seed) and says on which line of
the new dump each one landed; `judge` compares what a replay dead-lettered and counted with
what every kind expects. Dead letters name their line (``events.jsonl:123``, ``#i`` for the
i-th event of a batch), so the lines are the identity that ties an outcome to its kind.

Injected records are extra copies with a fresh ``event_id`` (``hx-<kind>-<n>``): the records of
the dump are all still there, so the alerts of a dirty replay must equal the clean one's. Kinds
that must be accepted as events stand in for their record (`Kind.replaces`) or carry no metric
signal, so that they change nothing either.

>>> record = {"topic": "orders", "key": "s-1", "value": {"event_id": "e1", "ts": 1772460600120,
...           "gmv": 12.5}}
>>> rng = np.random.default_rng(0)
>>> KIND_BY_NAME["nan_literal"].make(record, rng)
[b'{"topic":"orders","key":"s-1","value":{"event_id":"e1","ts":1772460600120,"gmv":NaN}}']
>>> KIND_BY_NAME["ts_epoch_seconds"].make(record, rng)[0][-28:]
b'"ts":1772460600,"gmv":12.5}}'
>>> print(KIND_BY_NAME["gmv_string"].expect, "|", KIND_BY_NAME["duplicate_adjacent"].expect)
dead letter wrong_type | dropped as a duplicate
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from stream_guard.ingest.schema import parse_event_time
from stream_guard.simulate.invalid import REQUIRED
from stream_guard.simulate.records import Record
from stream_guard.types import iso_utc

__all__ = ["ALERT_KEY", "KINDS", "KIND_BY_NAME", "PENDING", "Injection", "Kind", "Outcome",
           "Placement", "ReplayRun", "Verdict", "counter_deltas", "inject", "judge", "line_of",
           "place", "replay_command", "run_replay", "stray_dead_letters", "write_hostile"]

Make = Callable[[Record, np.random.Generator], list[bytes]]
"""A valid record and a generator -> the dump lines to inject (no newline in any of them)."""

DAY_MS = 86_400_000
MB = 1 << 20
FLOOD = 5_000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What replay must do with each line a kind injects.

    `dead`: the reasons of the line's dead letters (several for a batch; none: its events are
    accepted). `counter`: the `replay --summary` counter the line's events go to instead of the
    windows (``duplicates``, ``late``, ``folded``), if any.
    """

    dead: tuple[str, ...] = ()
    counter: str | None = None

    def __str__(self) -> str:
        parts = [f"dead letter {', '.join(self.dead)}"] if self.dead else []
        parts += [_COUNTED[self.counter]] if self.counter else []
        return "; ".join(parts) or "accepted"


_COUNTED = {"duplicates": "dropped as a duplicate", "late": "accepted, counted late",
            "folded": "accepted, folded into 'other'"}
ACCEPTED = Outcome()
DUPLICATE = Outcome(counter="duplicates")
LATE = Outcome(counter="late")
FOLDED = Outcome(counter="folded")


def dead(*reasons: str) -> Outcome:
    return Outcome(dead=tuple(sorted(reasons)))


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of bad input: what it is, what replay must do with it, how to make it.

    `topic`: the topic of the records it corrupts (None: any). `count`: injections per dump.
    `replaces`: its lines stand in for the record (an accepted variant must not add an event).
    `distance`: records of the dump between the record and the injected lines. `first`: the
    lines go before the dump's first line. `keep_id`: the record keeps its ``event_id``.
    """

    name: str
    doc: str
    expect: Outcome
    make: Make
    topic: str | None = "orders"
    count: int = 3
    replaces: bool = False
    distance: int = 0
    first: bool = False
    keep_id: bool = False


# -- building blocks of kinds ---------------------------------------------------------------

def _line(record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record)


def _with(record: Record, changes: Mapping[str, Any]) -> Record:
    """`record` with its value's fields changed (`_DROP` removes a field)."""
    value = {**record["value"], **changes}
    return {**record, "value": {k: v for k, v in value.items() if v is not _DROP}}


_DROP: Any = object()


def _event_ms(record: Record) -> int:
    return parse_event_time(record["value"]["ts"])


def _set(name: str, value: Any) -> Make:
    """The record with field `name` set to `value` (called with record and rng if callable)."""
    def make(record: Record, rng: np.random.Generator) -> list[bytes]:
        return [_line(_with(record, {name: value(record, rng) if callable(value) else value}))]
    return make


def _ts(at: Callable[[int], Any]) -> Make:
    """The record with ``ts`` replaced by `at` of its event time (ms)."""
    return _set("ts", lambda record, _rng: at(_event_ms(record)))


def _drop_required(record: Record, rng: np.random.Generator) -> list[bytes]:
    """The record without one of its topic's required fields (chosen by `rng`)."""
    required = REQUIRED[record["topic"]]
    return [_line(_with(record, {required[int(rng.integers(len(required)))]: _DROP}))]


def _raw(name: str, text: bytes) -> Make:
    """The record with field `name` written as raw `text` (JSON cannot say NaN; 10**30 is no
    64-bit integer): a marker value is serialised, then replaced in the line."""
    marker = orjson.dumps("\x00hostile\x00")

    def make(record: Record, rng: np.random.Generator) -> list[bytes]:
        return [_line(_with(record, {name: "\x00hostile\x00"})).replace(marker, text)]
    return make


def _text(transform: Callable[[bytes], bytes]) -> Make:
    """The record's line, transformed as text."""
    return lambda record, _rng: [transform(_line(record))]


def _fixed(line: bytes) -> Make:
    return lambda _record, _rng: [line]


def _envelope(**changes: Any) -> Make:
    """The record with its envelope changed (`_DROP` removes a key; callables get the record)."""
    def make(record: Record, rng: np.random.Generator) -> list[bytes]:
        env = {**record, **{k: v(record) if callable(v) else v for k, v in changes.items()}}
        return [_line({k: v for k, v in env.items() if v is not _DROP})]
    return make


def _nested(depth: int, open_: bytes, close: bytes) -> Make:
    """The record with an extra field nested `depth` levels deep (raw: orjson refuses it)."""
    return _raw("meta", open_ * depth + b"1" + close * depth)


def _bad_copies(record: Record) -> list[Record]:
    """Two invalid copies of a value (gmv a string; ts missing), for batches."""
    value, event_id = record["value"], record["value"]["event_id"]
    return [{**value, "event_id": f"{event_id}-bad1", "gmv": "12.50"},
            {k: v for k, v in value.items() if k != "ts"} | {"event_id": f"{event_id}-bad2"}]


def _batch(record: Record, _rng: np.random.Generator) -> list[bytes]:
    """The record's value as a JSON array batch with two invalid copies after it."""
    return [_line({**record, "value": [record["value"], *_bad_copies(record)]})]


def _jsonl_raw(record: Record, _rng: np.random.Generator) -> list[bytes]:
    """The record's value and a negative-gmv copy as a JSONL payload in ``value_raw``."""
    bad = {**record["value"], "event_id": f"{record['value']['event_id']}-bad", "gmv": -1}
    text = b"\n".join(orjson.dumps(v) for v in (record["value"], bad)).decode()
    return [_line({"topic": record["topic"], "key": record["key"], "value_raw": text})]


def _flood(name: str) -> Make:
    """`FLOOD` copies of an order at its event time (so in one window of every metric), each
    with a new junk value of dimension `name`. Their gmv is 0: the flood adds slices and
    volume, not GMV, so that what is on trial is slice admission, not the GMV total."""
    def make(record: Record, rng: np.random.Generator) -> list[bytes]:
        event_id = record["value"]["event_id"]
        return [_line(_with(record, {name: f"junk-{name}-{i:05d}", "gmv": 0,
                                     "event_id": f"{event_id}-{i:05d}"})) for i in range(FLOOD)]
    return make


def _copy(record: Record, _rng: np.random.Generator) -> list[bytes]:
    return [_line(record)]


def _double_gmv(record: Record, _rng: np.random.Generator) -> list[bytes]:
    return [_line(_with(record, {"gmv": record["value"]["gmv"] * 2}))]


def _many_keys(record: Record, _rng: np.random.Generator) -> list[bytes]:
    return [_line(_with(record, {f"x{i:05d}": i for i in range(10_000)}))]


def _huge(_record: Record, rng: np.random.Generator) -> str:
    """1 MB of random letters (fresh for every record: no two alike)."""
    return rng.integers(ord("a"), ord("z") + 1, size=MB, dtype=np.uint8).tobytes().decode()


def _naive_iso(ms: int) -> str:
    return iso_utc(ms).removesuffix("Z")


# -- the table -------------------------------------------------------------------------------

_DUP: dict[str, Any] = {"expect": DUPLICATE, "keep_id": True, "topic": None}

KINDS: tuple[Kind, ...] = (
    # lines that are not JSON, or hold no record
    Kind("empty_line", "an empty line", dead("empty_line"), _fixed(b""), topic=None),
    Kind("whitespace_line", "a line of blanks and a tab", dead("empty_line"),
         _fixed(b" \t  "), topic=None),
    Kind("truncated_json", "the first half of a record's line", dead("bad_json"),
         _text(lambda b: b[: len(b) // 2]), topic=None),
    Kind("invalid_utf8", "bytes FF FE (not UTF-8) in a string", dead("bad_json"),
         _raw("buyer_id", b'"\xff\xfe"')),
    Kind("raw_nul_byte", "an unescaped NUL byte in a string", dead("bad_json"),
         _raw("buyer_id", b'"b\x00x"')),
    Kind("raw_control_char", "an unescaped ESC in a string", dead("bad_json"),
         _raw("region", b'"EU\x1b[31m"')),
    Kind("utf8_bom", "a UTF-8 byte order mark before the record", dead("bad_json"),
         _text(lambda b: b"\xef\xbb\xbf" + b), topic=None),
    Kind("two_records_one_line", "two records on one line", dead("bad_json"),
         _text(lambda b: b + b), topic=None),
    Kind("trailing_comma", "a comma before the closing brace", dead("bad_json"),
         _text(lambda b: b[:-1] + b",}"), topic=None),
    Kind("python_repr", "the record as a Python dict (quotes ', None)", dead("bad_json"),
         lambda r, _: [repr(r).encode()], topic=None),
    Kind("huge_garbage_line", "1 MB of letters, not JSON", dead("bad_json"),
         lambda r, g: [_huge(r, g).encode()], topic=None, count=2),
    Kind("nan_literal", "gmv NaN (JSON has no such literal)", dead("bad_json"),
         _raw("gmv", b"NaN")),
    Kind("infinity_literal", "gmv Infinity", dead("bad_json"), _raw("gmv", b"Infinity")),
    Kind("minus_infinity_literal", "gmv -Infinity", dead("bad_json"),
         _raw("gmv", b"-Infinity")),
    Kind("overflow_literal", "gmv 1e400 (infinite as a double)", dead("bad_json"),
         _raw("gmv", b"1e400")),
    Kind("deep_array", "an extra field 10,000 arrays deep", dead("bad_json"),
         _nested(10_000, b"[", b"]")),
    Kind("deep_object", "an extra field 10,000 objects deep", dead("bad_json"),
         _nested(10_000, b'{"a":', b"}")),
    Kind("json_string_line", 'the line "hello"', dead("not_an_object"),
         _fixed(b'"hello"'), topic=None),
    Kind("json_number_line", "the line 42", dead("not_an_object"), _fixed(b"42"),
         topic=None),
    Kind("json_array_line", "the line []", dead("not_an_object"), _fixed(b"[]"),
         topic=None),
    Kind("json_null_line", "the line null", dead("not_an_object"), _fixed(b"null"),
         topic=None),
    Kind("array_of_records", "a JSON array holding a record", dead("not_an_object"),
         _text(lambda b: b"[" + b + b"]"), topic=None),
    # envelopes
    Kind("missing_envelope", "the value alone, no {topic, key, value}",
         dead("missing_envelope"), lambda r, _: [_line(r["value"])], topic=None),
    Kind("envelope_without_value", "an envelope with topic and key only",
         dead("missing_envelope"), _envelope(value=_DROP), topic=None),
    Kind("unknown_topic", "topic 'orderz'", dead("unknown_topic"),
         _envelope(topic="orderz"), topic=None),
    Kind("topic_not_string", "topic 7", dead("unknown_topic"), _envelope(topic=7),
         topic=None),
    Kind("internal_topic", "topic 'alerts' (not an event topic)", dead("unknown_topic"),
         _envelope(topic="alerts"), topic=None),
    Kind("value_raw_garbage", "value_raw an HTML error page", dead("bad_json"),
         _envelope(value=_DROP, value_raw="<html><body>502 Bad Gateway</body></html>"),
         topic=None),
    Kind("value_raw_event", "the event as JSON text in value_raw (stands in)", ACCEPTED,
         _envelope(value=_DROP, value_raw=lambda r: orjson.dumps(r["value"]).decode()),
         topic=None, replaces=True),
    Kind("value_as_json_string", "the value a string holding the event's JSON",
         dead("not_an_object"),
         _envelope(value=lambda r: orjson.dumps(r["value"]).decode()), topic=None),
    Kind("value_null", "value null", dead("not_an_object"), _envelope(value=None),
         topic=None),
    Kind("batch_mixed", "a JSON array value: the event, gmv a string, no ts (stands in)",
         dead("missing_field", "wrong_type"), _batch, replaces=True, keep_id=True),
    Kind("batch_jsonl_raw", "JSONL in value_raw: the event, a gmv -1 (stands in)",
         dead("out_of_range"), _jsonl_raw, replaces=True, keep_id=True),
    Kind("key_not_string", "key 12345, a number (stands in)", ACCEPTED,
         _envelope(key=12345), topic=None, replaces=True),
    Kind("envelope_extra_fields", "partition, offset, headers in the envelope (stands in)",
         ACCEPTED, _envelope(partition=3, offset=99, headers={"h": "1"}), topic=None,
         replaces=True),
    Kind("crlf_line", "a line ending in CR LF (stands in)", ACCEPTED,
         _text(lambda b: b + b"\r"), topic=None, replaces=True),
    # wrong types
    Kind("gmv_bool", "gmv true", dead("wrong_type"), _set("gmv", True)),
    Kind("gmv_string", "gmv '12.50'", dead("wrong_type"), _set("gmv", "12.50")),
    Kind("gmv_null", "gmv null", dead("wrong_type"), _set("gmv", None)),
    Kind("gmv_object", "gmv {amount, currency}", dead("wrong_type"),
         _set("gmv", {"amount": 12.5, "currency": "EUR"})),
    Kind("gmv_array", "gmv [12.5]", dead("wrong_type"), _set("gmv", [12.5])),
    Kind("region_number", "region 42", dead("wrong_type"), _set("region", 42)),
    Kind("region_bool", "region false", dead("wrong_type"), _set("region", False)),
    Kind("category_object", "category {name}", dead("wrong_type"),
         _set("category", {"name": "toys"})),
    Kind("event_id_number", "event_id 12345", dead("wrong_type"), _set("event_id", 12345),
         topic=None),
    Kind("event_id_empty", "event_id ''", dead("empty_value"), _set("event_id", ""),
         topic=None),
    Kind("event_id_null", "event_id null", dead("wrong_type"), _set("event_id", None),
         topic=None),
    Kind("event_id_missing", "no event_id", dead("missing_field"), _set("event_id", _DROP),
         topic=None),
    Kind("flagged_bad_string", "flagged_bad 'true'", dead("wrong_type"),
         _set("flagged_bad", "true"), topic="seller_onboarding"),
    Kind("flagged_bad_int", "flagged_bad 1", dead("wrong_type"), _set("flagged_bad", 1),
         topic="seller_onboarding"),
    Kind("decision_not_in_enum", "decision 'maybe'", dead("not_in_enum"),
         _set("decision", "maybe"), topic="seller_onboarding"),
    Kind("scope_string", "governance scope 'EU'", dead("wrong_type"), _set("scope", "EU"),
         topic="governance_actions", count=1),
    Kind("scope_value_number", "governance scope {region: 7}", dead("wrong_type"),
         _set("scope", {"region": 7}), topic="governance_actions", count=1),
    Kind("action_kind_unknown", "governance kind 'purge'", dead("not_in_enum"),
         _set("kind", "purge"), topic="governance_actions", count=1),
    *(Kind(f"missing_field_{topic}", f"a {topic} event without a required field",
           dead("missing_field"), _drop_required, topic=topic,
           count=1 if topic == "governance_actions" else 3) for topic in REQUIRED),
    # timestamps
    Kind("ts_bool", "ts true", dead("wrong_type"), _set("ts", True), topic=None),
    Kind("ts_float", "ts epoch ms as a float", dead("wrong_type"),
         _ts(lambda ms: ms + 0.5), topic=None),
    Kind("ts_null", "ts null", dead("wrong_type"), _set("ts", None), topic=None),
    Kind("ts_missing", "no ts", dead("missing_field"), _set("ts", _DROP), topic=None),
    Kind("ts_huge_int", "ts 10**30 (a float once parsed)", dead("wrong_type"),
         _raw("ts", b"1" + b"0" * 30), topic=None),
    Kind("ts_epoch_seconds", "ts in epoch seconds", dead("bad_timestamp"),
         _ts(lambda ms: ms // 1000), topic=None),
    Kind("ts_naive_iso", "ts ISO without a zone", dead("bad_timestamp"), _ts(_naive_iso),
         topic=None),
    Kind("ts_unparseable", "ts 'yesterday 14:10'", dead("bad_timestamp"),
         _set("ts", "yesterday 14:10"), topic=None),
    Kind("ts_epoch_1970", "ts epoch ms of 1970-01-02", dead("bad_timestamp"),
         _set("ts", DAY_MS), topic=None),
    Kind("ts_iso_1970", "ts 1970-01-01T00:00:00Z", dead("bad_timestamp"),
         _set("ts", "1970-01-01T00:00:00Z"), topic=None),
    Kind("ts_iso_year_1", "ts 0001-01-01T00:00:00Z", dead("bad_timestamp"),
         _set("ts", "0001-01-01T00:00:00Z"), topic=None),
    Kind("ts_iso_9999", "ts 9999-12-31T23:59:59Z", dead("bad_timestamp"),
         _set("ts", "9999-12-31T23:59:59Z"), topic=None),
    Kind("ts_epoch_9999", "ts epoch ms 253402300799999 (9999-12-31)", dead("bad_timestamp"),
         _set("ts", 253_402_300_799_999), topic=None),
    Kind("ts_iso_2001", "ts 2001-06-01 (far past, in range)", LATE,
         _set("ts", "2001-06-01T12:00:00Z"), topic=None),
    Kind("ts_week_before", "ts a week before the record's", LATE,
         _ts(lambda ms: iso_utc(ms - 7 * DAY_MS)), topic=None),
    Kind("ts_2001_first", "a copy dated 2001 as the dump's first line", LATE,
         _set("ts", "2001-06-01T12:00:00Z"), topic=None, first=True, count=1),
    Kind("ts_year_ahead", "ts a year after the record's", dead("future_timestamp"),
         _ts(lambda ms: iso_utc(ms + 365 * DAY_MS)), topic=None),
    Kind("ts_iso_2099", "ts 2099-12-31T00:00:00Z", dead("future_timestamp"),
         _set("ts", "2099-12-31T00:00:00Z"), topic=None),
    Kind("ts_epoch_2099", "ts epoch ms of 2099-12-31", dead("future_timestamp"),
         _set("ts", 4_102_358_400_000), topic=None),
    # values
    Kind("gmv_1e308", "gmv 1e308", dead("out_of_range"), _set("gmv", 1e308)),
    Kind("gmv_1e12", "gmv 1e12", dead("out_of_range"), _set("gmv", 1e12)),
    Kind("gmv_huge_int", "gmv 10**30 (a float once parsed)", dead("out_of_range"),
         _raw("gmv", b"1" + b"0" * 30)),
    Kind("gmv_u64_max", "gmv 2**64 - 1", dead("out_of_range"), _set("gmv", 2**64 - 1)),
    Kind("gmv_negative", "gmv -1", dead("out_of_range"), _set("gmv", -1)),
    Kind("gmv_zero", "an extra order with gmv 0 (valid)", ACCEPTED, _set("gmv", 0)),
    Kind("gmv_negative_zero", "an extra order with gmv -0.0 (valid: not below 0)",
         ACCEPTED, _set("gmv", -0.0)),
    # strings and objects
    Kind("huge_extra_field", "an extra field of 1 MB (stands in)", ACCEPTED,
         _set("note", _huge), replaces=True, count=2),
    Kind("huge_order_id", "order_id of 1 MB (stands in)", ACCEPTED, _set("order_id", _huge),
         replaces=True, count=2),
    Kind("huge_region", "region of 1 MB, a new slice value (stands in)", FOLDED,
         _set("region", _huge), replaces=True, count=2),
    Kind("nul_escaped", "buyer_id with an escaped NUL (stands in)", ACCEPTED,
         _set("buyer_id", "b\x00x"), replaces=True),
    Kind("control_chars_id", "order_id with BEL and ESC[31m (stands in)", ACCEPTED,
         _set("order_id", "o\x07\x1b[31m"), replaces=True),
    Kind("control_chars_region", "region 'EU' + BEL, a new slice value (stands in)", FOLDED,
         _set("region", "EU\x07"), replaces=True),
    Kind("many_keys", "10,000 extra keys (stands in)", ACCEPTED, _many_keys, replaces=True,
         count=2),
    Kind("extra_fields", "unknown fields, allowed by additionalProperties (stands in)",
         ACCEPTED, _set("debug", {"trace": [1, 2], "app": "9.9"}), topic=None,
         replaces=True),
    # duplicates (the same key, so the same partition)
    Kind("duplicate_adjacent", "an exact copy right after the record", make=_copy, **_DUP),
    Kind("duplicate_near", "an exact copy 5 records later", make=_copy, distance=5, **_DUP),
    Kind("duplicate_far", "an exact copy 30 records later", make=_copy, distance=30, **_DUP),
    Kind("duplicate_changed", "same event_id, gmv doubled", make=_double_gmv,
         **_DUP | {"topic": "orders"}),
    Kind("duplicate_epoch_ts", "same event_id, ts as epoch ms", make=_ts(lambda ms: ms),
         **_DUP),
    # floods
    Kind("flood_region", f"{FLOOD:,} orders with new region values in a window, gmv 0",
         FOLDED, _flood("region"), count=1),
    Kind("flood_category", f"{FLOOD:,} orders with new category values in a window, gmv 0",
         FOLDED, _flood("category"), count=1),
)
"""Every kind, grouped: lines that hold no record, envelopes, wrong types, timestamps, values,
strings and objects, duplicates, floods. `topic=None`: any record will do."""
KIND_BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}

PENDING: dict[str, str] = {}
"""Kinds whose expected outcome is not implemented yet, and why: the suite skips them and does
not inject them (a pending kind may still break the whole replay). Remove a kind once done."""


# -- injection -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Placement:
    """The `n`-th injection of `kind`, made from the dump's record at index `base`."""

    kind: Kind
    n: int
    base: int


@dataclass(frozen=True, slots=True)
class Injection:
    """An injected line: its kind and its line number in the dirty dump (from 1)."""

    kind: str
    line: int


def place(topics: Sequence[str], kinds: Sequence[Kind], seed: int) -> list[Placement]:
    """A distinct record of the right topic for every injection, drawn by `seed`: distinct, so
    that no record is both stood in for and copied. `topics` holds each record's topic.

    >>> [(p.kind.name, p.base) for p in place(["a", "b", "a", "b"], [
    ...     Kind("k", "", ACCEPTED, _copy, topic="b", count=2)], seed=1)]
    [('k', 1), ('k', 3)]
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(topics))
    by_topic = np.asarray(topics, dtype=object)[order]
    pools: dict[str | None, Iterator[int]] = {
        t: iter(order[by_topic == t].tolist()) for t in {*topics, None} if t is not None}
    pools[None] = iter(order.tolist())
    taken = {0}  # the first line stays a valid record: `first` kinds go before it
    out: list[Placement] = []
    for kind in kinds:
        for n in range(kind.count):
            base = 0 if kind.first else next((i for i in pools[kind.topic] if i not in taken), -1)
            if base < 0:
                raise ValueError(f"kind {kind.name}: no {kind.topic or 'record'} left to use")
            taken.add(base)
            out.append(Placement(kind, n, base))
    return out


def inject(
    lines: Iterable[bytes], placements: Sequence[Placement], seed: int
) -> Iterator[tuple[bytes, Kind | None]]:
    """The dump's lines (without newline) with the injected lines among them, each with its
    kind (None for a line of the dump). Pure: same lines, placements and seed, same output."""
    at: dict[int, list[Placement]] = defaultdict(list)
    for p in placements:
        at[p.base].append(p)
    later: dict[int, list[tuple[bytes, Kind]]] = defaultdict(list)
    for i, line in enumerate(lines):
        made = [(p.kind, _make(p, line, seed)) for p in at.get(i, ())]
        yield from ((out, kind) for kind, outs in made if kind.first for out in outs)
        if not any(kind.replaces for kind, _ in made):
            yield line, None
        for kind, outs in made:
            if not kind.first:
                later[i + kind.distance] += [(out, kind) for out in outs]
        yield from later.pop(i, ())
    for i in sorted(later):
        yield from later[i]


def _make(p: Placement, line: bytes, seed: int) -> list[bytes]:
    """The lines of one injection, from the record on `line` (retagged unless `keep_id`)."""
    record = orjson.loads(line)
    if not p.kind.keep_id:
        record = _with(record, {"event_id": f"hx-{p.kind.name}-{p.n:04d}"})
    rng = np.random.default_rng([seed, zlib.crc32(p.kind.name.encode()), p.n])
    return p.kind.make(record, rng)


def write_hostile(clean: Path, dirty: Path, kinds: Sequence[Kind], seed: int) -> list[Injection]:
    """Writes record dump `clean` to `dirty` with the kinds injected; returns their lines."""
    placements = place(_topics(clean), kinds, seed)
    injections: list[Injection] = []
    with clean.open("rb") as src, dirty.open("wb") as out:
        lines = (line.rstrip(b"\n") for line in src)
        for number, (line, kind) in enumerate(inject(lines, placements, seed), 1):
            if b"\n" in line:
                raise ValueError(f"kind {kind and kind.name} made a line with a newline")
            out.write(line + b"\n")
            if kind is not None:
                injections.append(Injection(kind.name, number))
    return injections


def _topics(path: Path) -> list[str]:
    """The topic of every line of a record dump ('' where none)."""
    prefix = b'{"topic":"'  # as the simulator writes records: read without decoding the line
    topics: list[str] = []
    with path.open("rb") as fh:
        for line in fh:
            if line.startswith(prefix):
                topics.append(line[len(prefix): line.index(b'"', len(prefix))].decode())
            else:
                obj = orjson.loads(line)
                topics.append(str(obj.get("topic", "")) if isinstance(obj, dict) else "")
    return topics


# -- judging a replay ------------------------------------------------------------------------

ALERT_KEY = ("fingerprint", "status", "reason", "window_start", "window_end", "severity")
"""The fields of an alert record a dirty replay must reproduce."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What happened to one kind's lines, against what should have."""

    kind: str
    injected: int
    expected: str
    observed: str
    ok: bool


def line_of(origin: str) -> int | None:
    """The line a dead letter's origin names: ``events.jsonl:12#3`` -> 12.

    >>> line_of("events.jsonl:12#3"), line_of("orders:0@7")
    (12, None)
    """
    where = origin.rpartition(":")[2].partition("#")[0]
    return int(where) if where.isdigit() else None


def judge(
    kinds: Sequence[Kind], injections: Sequence[Injection],
    dead_letters: Iterable[Mapping[str, Any]], deltas: Mapping[str, int] | None,
) -> list[Verdict]:
    """A verdict per injected kind. `dead_letters`: the records of ``--dead-letters``;
    `deltas`: the dirty run's summary counters minus the clean run's (None: no summary)."""
    reasons: dict[int | None, list[str]] = defaultdict(list)
    for dl in dead_letters:
        reasons[line_of(str(dl["origin"]))].append(str(dl["reason"]))
    lines: dict[str, list[int]] = defaultdict(list)
    for inj in injections:
        lines[inj.kind].append(inj.line)
    counted = Counter({c: 0 for c in _COUNTED})
    for kind in kinds:
        if kind.expect.counter is not None:
            counted[kind.expect.counter] += len(lines[kind.name])
    return [_verdict(k, lines[k.name], reasons, deltas, counted) for k in kinds if lines[k.name]]


def _verdict(
    kind: Kind, lines: list[int], reasons: Mapping[int | None, list[str]],
    deltas: Mapping[str, int] | None, counted: Mapping[str, int],
) -> Verdict:
    seen = Counter(tuple(sorted(reasons.get(line, ()))) for line in lines)
    observed = [f"{str(Outcome(dead=r)) if r else 'no dead letter'} x{n}" for r, n in seen.items()]
    ok = set(seen) == {kind.expect.dead}
    if kind.expect.counter is not None:
        counter_ok, text = _counter(kind.expect.counter, deltas, counted)
        observed.append(text)
        ok = ok and counter_ok
    return Verdict(kind.name, len(lines), str(kind.expect), "; ".join(observed), ok)


def _counter(name: str, deltas: Mapping[str, int] | None, counted: Mapping[str, int]) -> tuple[
        bool, str]:
    """Is the summary counter right for all the lines injected for it (by every kind)?
    Duplicates exactly; late at least once per event (an event is late once per metric it
    feeds); folded at all (the counter counts slice updates, not events)."""
    if deltas is None:
        return False, f"{name}: no replay summary"
    got, want = deltas.get(name, 0), counted[name]
    ok = {"duplicates": got == want, "late": got >= want}.get(name, got > 0)
    return ok, f"{name} +{got:,} (all kinds: {want:,} lines)"


def stray_dead_letters(
    injections: Sequence[Injection], dead_letters: Iterable[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Dead letters on no injected line: valid records refused."""
    injected = {inj.line for inj in injections}
    return [dl for dl in dead_letters if line_of(str(dl["origin"])) not in injected]


# -- running a replay ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One `stream-guard replay` in a child process, and what it wrote."""

    exit_code: int
    peak_rss_mb: float
    seconds: float
    alerts: list[tuple[Any, ...]]
    dead_letters: list[dict[str, Any]]
    summary: dict[str, Any] | None
    stderr: str = field(repr=False)


def replay_command(
    dump: Path, out_dir: Path, rules: Path, with_summary: bool = True
) -> list[str]:
    """The command a user runs: ``stream-guard replay ... --quiet`` with the venv's script."""
    script = Path(sys.executable).with_name("stream-guard")
    cmd = [str(script)] if script.exists() else [
        sys.executable, "-c", "import sys; from stream_guard.cli import main; sys.exit(main())"]
    cmd += ["replay", "--rules", str(rules), "--input", str(dump), "--quiet",
            "--output", str(out_dir / "alerts.jsonl"),
            "--dead-letters", str(out_dir / "dead_letters.jsonl")]
    return cmd + (["--summary", str(out_dir / "summary.json")] if with_summary else [])


def run_replay(
    dump: Path, out_dir: Path, rules: Path, *, memory_limit_mb: int = 4096,
    timeout_s: float = 600.0, with_summary: bool = True,
) -> ReplayRun:
    """Runs `replay_command` and reads its files. The peak RSS is the child's own (wait4);
    its address space is capped at `memory_limit_mb`, so a runaway replay fails alone
    (MemoryError, exit 1) rather than take the machine down."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = memory_limit_mb * MB
    started = time.perf_counter()
    with (out_dir / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            replay_command(dump, out_dir, rules, with_summary), stdout=subprocess.DEVNULL,
            stderr=err, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    summary_path = out_dir / "summary.json"
    return ReplayRun(
        exit_code=proc.returncode, peak_rss_mb=usage.ru_maxrss / 1024,
        seconds=time.perf_counter() - started,
        alerts=[tuple(a.get(k) for k in ALERT_KEY) for a in _jsonl(out_dir / "alerts.jsonl")],
        dead_letters=_jsonl(out_dir / "dead_letters.jsonl"),
        summary=orjson.loads(summary_path.read_bytes()) if summary_path.exists() else None,
        stderr=(out_dir / "stderr.txt").read_text(errors="replace"))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        return [orjson.loads(line) for line in fh]


def counter_deltas(clean: ReplayRun, dirty: ReplayRun) -> dict[str, int] | None:
    """The dirty run's summary counters minus the clean run's (None without summaries)."""
    if clean.summary is None or dirty.summary is None:
        return None
    return {name: int(dirty.summary.get(name, 0)) - int(clean.summary.get(name, 0))
            for name in _COUNTED}
