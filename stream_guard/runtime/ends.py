"""Where a partition really ends, found by reading from where the broker says it ends.

Apache Kafka answers ListOffsets(latest) with the offset after the last record. Tansu, the
development broker, answers with the base offset of the last record batch (964 for 1,000 records
sent in batches: ../shared/notes). Anything that reads "to the end" and trusts that answer
stops one batch short. For Faust's table recovery that is silent data loss: a restarted worker
rebuilt its owner state without the last batch of changelog writes -- windows merged and acked
before the crash, missing after it -- and re-scored windows with part of a source's deltas
missing (tests/integration/test_worker_crash.py). So the answer is only a starting point:
`live_ends` reads on from it until the partition has nothing more for `END_POLL_MS`. On Apache
Kafka that read finds nothing and costs one empty fetch per call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from stream_guard.config.kafka_security import KafkaSecurity, client_options

__all__ = ["END_POLL_MS", "live_ends", "new_reader", "reader"]

log = logging.getLogger(__name__)

END_POLL_MS = 200
"""A poll returning nothing for this long ends a read to the live end of a partition."""


def new_reader(bootstrap: list[str], security: KafkaSecurity | None = None) -> AIOKafkaConsumer:
    """A consumer outside any group, for reading partitions by offset (assign, seek), not
    started: the worker's only aiokafka client outside Faust's. TLS and SASL from `security`,
    else from the environment (config/kafka_security.py), as the Faust app's."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                            fetch_max_wait_ms=50, **client_options(security))


@asynccontextmanager
async def reader(
    bootstrap: list[str], security: KafkaSecurity | None = None
) -> AsyncIterator[AIOKafkaConsumer]:
    """`new_reader`, started, and stopped on the way out."""
    consumer = new_reader(bootstrap, security)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


class _Partition(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


P = TypeVar("P", bound=_Partition)


async def live_ends(
    bootstrap: list[str], reported: Mapping[P, int | None], security: KafkaSecurity | None = None
) -> dict[P, int]:
    """Partition -> the offset after its last record, reading on from `reported` (the broker's
    answer; None: nothing reported, the partition is read from its start)."""
    if not reported:
        return {}
    keys = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
    ends = {tp: offset or 0 for tp, offset in reported.items()}
    async with reader(bootstrap, security) as consumer:
        consumer.assign(list(keys))
        for atp, tp in keys.items():
            consumer.seek(atp, ends[tp])
        while batches := await consumer.getmany(timeout_ms=END_POLL_MS):
            for atp, records in batches.items():
                if records:
                    tp = keys[atp]
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
    for tp, end in ends.items():
        if end != (reported[tp] or 0):  # only what the broker got wrong
            log.info("%s/%d ends at %d (the broker said %s)", tp.topic, tp.partition, end,
                     reported[tp])
    return ends
