"""Integration fixtures: one embedded broker for the whole session, isolated topics per test.

The broker keeps everything in memory and starts in ~0.1 s, but tests share one: isolation
comes from topic prefixes (`topic_prefix`, `new_prefix`), not from separate brokers.

Clients that join a consumer group should use a short session timeout (e.g. 6 s): the embedded
broker holds JoinGroup for session_timeout / 2, so Faust's default of 60 s makes a join take ~30 s.
Fetches are held for about fetch_max_wait / 2 even when data is there: use a small
fetch_max_wait (10-50 ms) in tests.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest

from stream_guard.broker import EmbeddedBroker
from stream_guard.config.topics import TopicSpec
from stream_guard.ingest.kafka_topics import create_topics

_counter = itertools.count(1)


def _prefix_for(label: str) -> str:
    """A topic-name-safe prefix, unique in this session: ``it<N>-<label>-``."""
    safe = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-")[:40]
    return f"it{next(_counter)}-{safe}-"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The session's embedded broker on a free port, stopped (and reaped) at the end."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture(scope="session")
def bootstrap(broker: EmbeddedBroker) -> str:
    """``127.0.0.1:PORT`` of the session's broker."""
    return broker.bootstrap


@pytest.fixture
def new_prefix(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Makes topic prefixes unique to this test (call it once per isolated set of topics)."""
    return lambda: _prefix_for(request.node.name)


@pytest.fixture
def topic_prefix(new_prefix: Callable[[], str]) -> str:
    """A topic prefix unique to this test."""
    return new_prefix()


@pytest.fixture
def kafka_topics(bootstrap: str, topic_prefix: str, topics: dict[str, TopicSpec]) -> str:
    """Creates every topic of topics/ under this test's prefix; returns the prefix."""
    create_topics(bootstrap, topics.values(), prefix=topic_prefix)
    return topic_prefix
