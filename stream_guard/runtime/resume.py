"""Where a source cut its reports before a crash: so that, re-reading, it cuts them there again.

Why: a source acknowledges a batch only after its reports are on the partials topic, and Faust
commits acknowledged offsets every `broker_commit_interval`, flushing the producer first. A
worker killed after sending a batch's reports but before the next commit leaves reports on the
partials topic for offsets that a restarted worker reads again, from the last committed offset.
The owner drops a report it has already merged (`next_offset` at most what it covered: see
runtime/owner.py), but only whole reports: if the re-read batch were cut elsewhere, part of it
would be counted twice. So before a source reports anything from a partition it has just been
given, `reported_offsets` reads back the partials topic for the reports that source sent beyond
the offset it resumes from, and the source cuts its first batches at their `next_offset`s
(`SourcePool.resume`). Each re-read report then equals one the owner has or has not merged, as a
whole: every event is counted once, whatever happened between the reports, the commit and the
crash.

The scan goes backwards from the end of the partials topic, a chunk at a time, and stops for a
source at its first report that ends at or before the resume offset: everything that source
sent later is after it in the topic (one producer per source, one ordered partition). That report
exists unless the source never reported (a new group) or the topic's retention dropped it; the
scan then ends at the beginning of the topic, or after `max_scan` records with a warning (the
cost of a fresh deployment reading an old topic). It reads only the reports' JSON, never a table.

A source also decides things from what it read BEFORE the resume offset: its robust watermark
(which events are late), the event ids it has seen (duplicates), the slices of its open windows.
`history` reads the partition back from the resume offset until the records are older than the
source's horizon (the longest window plus lateness, and the allowed clock skew), at most
`WARM_MAX` records; the source re-reads them without reporting anything (`SourcePool.warm`), so
a restarted source decides as the one that crashed. Beyond `WARM_MAX` records (a horizon of more
than that many events), a duplicate whose first copy is older than what was re-read is counted
once more after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from stream_guard.config.kafka_security import KafkaSecurity
from stream_guard.ingest.kafka_batch import event_time
from stream_guard.runtime.ends import END_POLL_MS, reader  # the end: read, not asked

__all__ = ["WARM_MAX", "Reported", "history", "read_range", "reported_offsets"]

log = logging.getLogger(__name__)

CHUNK = 2_000
"""Records read per step backwards; doubled each step."""

MAX_SCAN = 1_000_000
"""Records read at most per scan, whatever remains unanchored."""

WARM_MAX = 200_000
"""Records of its partition a resumed source re-reads at most (`history`)."""

HEAD = 32
"""`history` stops at a chunk whose first HEAD records are all older than the horizon."""

SLOW_POLLS = 50
"""Empty polls a bounded read waits at most for records it knows are there (10 s)."""



class Reported(NamedTuple):
    """What a source's previous consumer reported, as seen from where the new one resumes."""

    cuts: list[int]  # the sorted `next_offset`s of its reports beyond the resume offset
    end: int | None  # where its last report ended (None: it never reported, as far as read)


async def reported_offsets(
    bootstrap: list[str], topic: str, resume_from: Mapping[str, int], max_scan: int = MAX_SCAN,
    security: KafkaSecurity | None = None,
) -> dict[str, Reported]:
    """Source name -> its reports beyond `resume_from[source]` and where its reports end: an
    end before the resume offset is a gap, events no report covers (TLS and SASL: `security`,
    else the environment's, as `ends.reader`)."""
    found: dict[str, set[int]] = {source: set() for source in resume_from}
    ends: dict[str, int] = {}
    if not resume_from:
        return {}
    async with reader(bootstrap, security) as consumer:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        budget = max_scan
        for tp in partitions:
            budget -= await _scan(consumer, tp, resume_from, found, ends, budget)
    return {source: Reported(sorted(offsets), ends.get(source))
            for source, offsets in found.items()}


async def _scan(
    consumer: AIOKafkaConsumer, tp: TopicPartition, resume_from: Mapping[str, int],
    found: dict[str, set[int]], ends: dict[str, int], budget: int,
) -> int:
    """Scans `tp` backwards until every source is anchored; returns the records read."""
    first = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    anchored: set[str] = set()
    hi: int | None = None  # read [lo, hi); None: to the live end
    lo, chunk, read = max(first, end - CHUNK), CHUNK, 0
    while True:
        records = await _read(consumer, tp, lo, hi)
        read += len(records)
        for record in reversed(records):  # newest first
            _note(record.value, resume_from, found, ends, anchored)
        if anchored >= resume_from.keys() or lo <= first:
            return read
        if read >= budget:
            log.warning("resume: %d records of %s read, no report found for %s before the "
                        "resume offset; cutting where found", read, tp.topic,
                        sorted(resume_from.keys() - anchored))
            return read
        chunk *= 2
        hi, lo = lo, max(first, lo - chunk)


def _note(
    value: bytes | None, resume_from: Mapping[str, int], found: dict[str, set[int]],
    ends: dict[str, int], anchored: set[str],
) -> None:
    try:
        obj = orjson.loads(value or b"null")
        source, (_first, next_offset) = obj["source"], obj["offsets"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return  # a tick, or a report from a version without offsets
    if source not in resume_from or source in anchored:
        return
    ends[source] = max(ends.get(source, -1), int(next_offset))
    if next_offset <= resume_from[source]:
        anchored.add(source)
    else:
        found[source].add(int(next_offset))


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int | None
) -> list[ConsumerRecord[bytes, bytes]]:
    """Records of offsets [lo, hi) (hi None: to the live end), in offset order. A bounded read
    ends at an empty poll only once the fetch position has reached `hi` (or the log's end):
    under load the first fetch can take longer than a poll, and a range read as empty then
    dropped the reports in it (a restarted owner stalled, found by test_worker_crash)."""
    consumer.seek(tp, lo)
    records: list[ConsumerRecord[bytes, bytes]] = []
    end = None if hi is None else min(hi, (await consumer.end_offsets([tp]))[tp])
    empty = 0
    while True:
        batch = (await consumer.getmany(tp, timeout_ms=END_POLL_MS)).get(tp, [])
        if not batch:
            empty += 1
            if end is None or empty > SLOW_POLLS or await consumer.position(tp) >= end:
                return records
            continue
        records += [m for m in batch if hi is None or m.offset < hi]
        if hi is not None and batch[-1].offset >= hi - 1:
            return records


async def read_range(
    bootstrap: list[str], topic: str, partition: int, lo: int, hi: int,
    security: KafkaSecurity | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """The records of offsets [lo, hi) of one partition, in offset order (those the log still
    has): a gap in what Faust delivered (runtime/agents.py, runtime/checkpoint.py)."""
    async with reader(bootstrap, security) as consumer:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        return await _read(consumer, tp, lo, hi)


async def history(
    bootstrap: list[str], until: Mapping[tuple[str, int], int], horizon_ms: int,
    max_records: int = WARM_MAX, security: KafkaSecurity | None = None,
) -> dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]]:
    """(topic, partition) -> the records before offset `until[...]` that a source resuming there
    must re-read (see the module docstring), in offset order."""
    if not until:
        return {}
    async with reader(bootstrap, security) as consumer:
        tps = [TopicPartition(*key) for key in until]
        consumer.assign(tps)
        firsts = await consumer.beginning_offsets(tps)
        return {(tp.topic, tp.partition): await _back(consumer, tp, firsts[tp],
                                                      until[(tp.topic, tp.partition)],
                                                      horizon_ms, max_records)
                for tp in tps}


async def _back(
    consumer: AIOKafkaConsumer, tp: TopicPartition, first: int, until: int, horizon_ms: int,
    max_records: int,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Reads `tp` backwards from `until` by doubling chunks until past the horizon."""
    chunks: list[list[ConsumerRecord[bytes, bytes]]] = []
    top: list[int] = []  # the 3 largest event times read: the watermark's estimate
    hi, chunk, read = until, CHUNK, 0
    while hi > first and read < max_records:
        lo = max(first, hi - chunk)
        records = await _read(consumer, tp, lo, hi)
        chunks.append(records)
        read += len(records)
        times = [_event_time(r.value) for r in records]
        top = sorted([*top, *(t for t in times if t is not None)])[-3:]
        if top and _older(times[:HEAD], top[0] - horizon_ms):
            break
        hi, chunk = lo, chunk * 2
    return [r for records in reversed(chunks) for r in records][-max_records:]


def _older(times: list[int | None], bound: int) -> bool:
    """All of `times` (that are known) are before `bound`: a chunk's head, past the horizon."""
    known = [t for t in times if t is not None]
    return bool(known) and max(known) < bound


def _event_time(value: bytes | None) -> int | None:
    """The event time of a record's value (the latest of a JSON array's); None if unreadable."""
    try:
        obj = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return None  # JSONL or not JSON: no bound from this record
    events = obj if isinstance(obj, list) else [obj]
    times = [t for t in map(event_time, events) if t is not None]
    return max(times, default=None)
