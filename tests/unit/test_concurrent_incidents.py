"""Two unrelated incidents on one metric are two alerts (issue 12 item 5): electronics orders
removed 10:30-12:00 while a gmv category=home episode is open used to raise no alert at all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_guard.alert.episodes import fingerprint
from stream_guard.backtest.replay import build_replayer
from stream_guard.config.rules import MetricRule, load_rules
from stream_guard.config.topics import load_topics
from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.types import AlertRecord, SliceKey, epoch_ms, slice_key
from tests.parity import replay_alerts

RULES_DIR = Path(__file__).resolve().parents[2] / "alert_rules"
HOME = slice_key({"category": "home"})
ELECTRONICS = slice_key({"category": "electronics"})


def _at(hour: int, minute: int = 0) -> int:
    return epoch_ms(datetime(2026, 3, 5, hour, minute, tzinfo=UTC))


def _ms(iso: str) -> int:
    return epoch_ms(datetime.fromisoformat(iso))


def _drop(name: str, key: SliceKey, start: int, end: int, magnitude: float) -> Incident:
    return Incident(name, "category_drop", "gmv", key, "down", start, end, magnitude,
                    "external", None, f"{name}: {dict(key)} orders drop")


@pytest.fixture(scope="module")
def gmv_alerts(gmv_rule: MetricRule) -> list[AlertRecord]:
    """Four days at half volume; on the fourth, home orders drop 60% 09:00-14:00 and
    electronics orders are all gone 10:30-12:00, while the home episode is open."""
    incidents = (_drop("home", HOME, _at(9), _at(14), 0.4),
                 _drop("electronics", ELECTRONICS, _at(10, 30), _at(12), 0.0))
    sim = Simulation(SimulationConfig(days=4, seed=5, scale=0.5, incidents=incidents))
    replayer = build_replayer(RULES_DIR, rules=[gmv_rule])
    return replay_alerts(replayer, list(sim.records()))


@pytest.fixture(scope="module")
def gmv_rule() -> MetricRule:
    return next(r for r in load_rules(RULES_DIR, load_topics()) if r.metric == "gmv")


def test_two_unrelated_incidents_on_one_metric_give_two_firing_alerts(
    gmv_alerts: list[AlertRecord], gmv_rule: MetricRule,
) -> None:
    new = [a for a in gmv_alerts if a["reason"] == "new" and _ms(a["window_end"]) <= _at(14)]
    assert [a["slice"] for a in new] == [{"category": "home"}, {"category": "electronics"}]
    home, electronics = new
    assert home["fingerprint"] == fingerprint("gmv", HOME, gmv_rule.rule_id)
    assert electronics["fingerprint"] == fingerprint("gmv", ELECTRONICS, gmv_rule.rule_id)
    assert _at(9) < _ms(home["window_end"]) <= _at(9, 45)
    assert _at(10, 30) < _ms(electronics["window_end"]) <= _at(11, 15)
    assert electronics["direction"] == "down" and electronics["episode_id"] != home["episode_id"]
    severities = {a["severity"] for a in gmv_alerts if a["episode_id"] == electronics["episode_id"]}
    assert "critical" in severities  # as critical as the same removal on its own
    top = next(h for h in electronics["hints"] if h["kind"] == "slice")
    assert top["slice"] == {"category": "electronics"}


def test_each_incident_resolves_on_its_own(gmv_alerts: list[AlertRecord]) -> None:
    resolved = [(a["slice"], _ms(a["window_end"])) for a in gmv_alerts
                if a["status"] == "resolved"]
    (first, electronics_end), (second, home_end) = resolved[:2]
    assert (first, second) == ({"category": "electronics"}, {"category": "home"})
    assert _at(12) < electronics_end <= _at(14)  # home's episode still open then
    assert _at(14) < home_end <= _at(16)
