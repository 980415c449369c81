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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["reported_offsets"]

log = logging.getLogger(__name__)

CHUNK = 2_000
"""Records read per step backwards; doubled each step."""

MAX_SCAN = 1_000_000
"""Records read at most per scan, whatever remains unanchored."""

END_POLL_MS = 200
"""A poll returning nothing for this long ends a read to the live end of the topic. (Tansu, the
development broker, reports the end offset as the base offset of the last batch, so the end is
found by reading, not asked.)"""


async def reported_offsets(
    bootstrap: list[str], topic: str, resume_from: Mapping[str, int], max_scan: int = MAX_SCAN,
) -> dict[str, list[int]]:
    """Source name -> the sorted `next_offset`s of its reports beyond `resume_from[source]`."""
    found: dict[str, set[int]] = {source: set() for source in resume_from}
    if not resume_from:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        budget = max_scan
        for tp in partitions:
            budget -= await _scan(consumer, tp, resume_from, found, budget)
    finally:
        await consumer.stop()
    return {source: sorted(offsets) for source, offsets in found.items()}


async def _scan(
    consumer: AIOKafkaConsumer, tp: TopicPartition, resume_from: Mapping[str, int],
    found: dict[str, set[int]], budget: int,
) -> int:
    """Scans `tp` backwards until every source is anchored; returns the records read."""
    first = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    anchored: set[str] = set()
    hi: int | None = None  # read [lo, hi); None: to the live end
    lo, chunk, read = max(first, end - CHUNK), CHUNK, 0
    while True:
        values = await _read(consumer, tp, lo, hi)
        read += len(values)
        for value in reversed(values):  # newest first
            _note(value, resume_from, found, anchored)
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
    anchored: set[str],
) -> None:
    try:
        obj = orjson.loads(value or b"null")
        source, (_first, next_offset) = obj["source"], obj["offsets"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return  # a tick, or a report from a version without offsets
    if source not in resume_from or source in anchored:
        return
    if next_offset <= resume_from[source]:
        anchored.add(source)
    else:
        found[source].add(int(next_offset))


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int | None
) -> list[bytes | None]:
    """Values of offsets [lo, hi) (hi None: to the live end), in offset order."""
    consumer.seek(tp, lo)
    values: list[bytes | None] = []
    while True:
        batch = (await consumer.getmany(tp, timeout_ms=END_POLL_MS)).get(tp, [])
        if not batch:
            return values
        values += [m.value for m in batch if hi is None or m.offset < hi]
        if hi is not None and batch[-1].offset >= hi - 1:
            return values
