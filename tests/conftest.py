"""Shared fixtures: the repo's topics and rules, and a builder of synthetic events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream_guard.config.rules import MetricRule, load_rules
from stream_guard.config.topics import TopicSpec, load_topics
from stream_guard.ingest.codec import Codec
from stream_guard.types import iso_utc
from tests.hostile import HostileRuns, make_hostile_runs

REPO = Path(__file__).resolve().parents[1]
T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z, a Monday


@pytest.fixture(scope="session")
def topics() -> dict[str, TopicSpec]:
    return load_topics(REPO / "topics")


@pytest.fixture(scope="session")
def codec(topics: dict[str, TopicSpec]) -> Codec:
    return Codec(topics)


@pytest.fixture(scope="session")
def rules(topics: dict[str, TopicSpec]) -> list[MetricRule]:
    return load_rules(REPO / "alert_rules", topics)


@pytest.fixture(scope="session")
def hostile_runs(tmp_path_factory: pytest.TempPathFactory) -> HostileRuns:
    """The hostile-input dumps and their replays (tests/hostile.py): one set per session for
    test_hostile.py and test_hostile_live.py."""
    return make_hostile_runs(tmp_path_factory.mktemp("hostile"))


def order(ts_ms: int, i: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid orders event; overrides replace fields."""
    event = {
        "event_id": f"o-{ts_ms}-{i}", "ts": iso_utc(ts_ms), "order_id": f"ord-{i}",
        "buyer_id": "b1", "seller_id": "s1", "region": "EU", "category": "toys",
        "seller_tier": "gold", "payment_method": "card", "channel": "app", "gmv": 10.0,
    }
    event.update(overrides)
    return event


@pytest.fixture
def make_order() -> Callable[..., dict[str, Any]]:
    return order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadscope` (scripts/test.sh): tests/xdist_schedule.py's order and grouping."""
    if config.getoption("dist") != "loadscope":
        return None
    from tests.xdist_schedule import make_scheduler

    return make_scheduler(config, log)
