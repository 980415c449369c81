"""`reported_offsets` on a real partials topic: where each source cut its reports beyond the
offset it resumes from, found by reading the topic backwards past ticks and other sources."""

from __future__ import annotations

import asyncio

import pytest

from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.kafka import producer
from stream_guard.runtime.reports import Report, encode, encode_tick
from stream_guard.runtime.resume import CHUNK, Reported, reported_offsets

pytestmark = pytest.mark.integration


def _report(source: str, first: int, next_offset: int) -> bytes:
    return encode(Report("gmv", source, 1_000, [], [], 5, first, next_offset))


def test_finds_the_cuts_after_the_resume_offset_across_chunks(
    bootstrap: str, kafka_topics: str, topics: dict[str, TopicSpec],
) -> None:
    topic = kafka_topics + "partials"
    values = [_report("orders/0", a, a + 10) for a in range(0, 30, 10)]  # cuts 10, 20, 30
    values += [_report("orders/1", 0, 7)]
    values += [encode_tick("gmv", t) for t in range(3 * CHUNK)]  # the anchors are chunks back
    values += [_report("orders/0", 30, 42), _report("orders/1", 7, 9)]
    values += [_report("orders/0", 20, 30)]  # a restarted source re-sending a cut (duplicate)
    values += [b"not json", encode_tick("gmv", 1)]
    with producer(bootstrap) as p:
        for v in values:
            p.send(topic, key=b"gmv", value=v)
        p.flush()

    found = asyncio.run(reported_offsets(
        [bootstrap], topic, {"orders/0": 20, "orders/1": 7, "orders/2": 0}))

    assert {source: r.cuts for source, r in found.items()} == {
        "orders/0": [30, 42], "orders/1": [9], "orders/2": []}


def test_a_source_resuming_past_everything_it_sent_has_no_cuts(
    bootstrap: str, kafka_topics: str, topics: dict[str, TopicSpec],
) -> None:
    topic = kafka_topics + "partials"
    with producer(bootstrap) as p:
        for a in range(0, 50, 10):
            p.send(topic, key=b"gmv", value=_report("listings/3", a, a + 10))
        p.flush()

    assert asyncio.run(reported_offsets([bootstrap], topic, {"listings/3": 50})) == {
        "listings/3": Reported([], 50)}
    # resuming beyond where its reports end: events 50-69 were never reported (a gap)
    assert asyncio.run(reported_offsets([bootstrap], topic, {"listings/3": 70})) == {
        "listings/3": Reported([], 50)}
    assert asyncio.run(reported_offsets([bootstrap], topic, {"listings/9": 0})) == {
        "listings/9": Reported([], None)}
    assert asyncio.run(reported_offsets([bootstrap], topic, {})) == {}
