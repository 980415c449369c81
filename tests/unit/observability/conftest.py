"""Scraping a real /metrics endpoint over HTTP, the way Prometheus does."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_guard.observability import RuntimeMetrics, Server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""(sample name, labels) → value."""

SCRAPE_TIMEOUT_S = 5


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metrics() -> RuntimeMetrics:
    return RuntimeMetrics()


@pytest.fixture
def server(metrics: RuntimeMetrics) -> Iterator[Server]:
    with metrics.serve(0, host="127.0.0.1") as srv:
        yield srv


@pytest.fixture
def scrape(server: Server) -> Callable[[], Samples]:
    """GET /metrics from the served bundle and parse the exposition text."""

    def get() -> Samples:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as response:
            assert response.status == 200
            return parse(response.read().decode())

    return get


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter nobody incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def sample() -> Callable[..., float]:
    return value
