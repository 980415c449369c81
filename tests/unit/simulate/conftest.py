"""Shared seeded runs of the simulator, small enough for unit tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from sim_schema import load_topic_specs

from stream_guard.simulate import Simulation, SimulationConfig
from stream_guard.simulate.tables import DIMENSION_VALUES


@pytest.fixture(scope="session")
def topic_specs() -> dict[str, dict[str, Any]]:
    return load_topic_specs()


@pytest.fixture(scope="session")
def small_sim() -> Simulation:
    """Three days at 5% volume with many invalid records: for record-level checks."""
    return Simulation(SimulationConfig(days=3, seed=9, scale=0.05, invalid_fraction=0.01))


@pytest.fixture(scope="session")
def small_records(small_sim: Simulation) -> list[dict[str, Any]]:
    return list(small_sim.records())


@pytest.fixture(scope="session")
def small_valid(small_sim: Simulation) -> list[dict[str, Any]]:
    """The same run without invalid records (they come from their own random stream)."""
    config = replace(small_sim.config, invalid_fraction=0.0)
    return list(Simulation(config).records())


@pytest.fixture(scope="session")
def week_sim() -> Simulation:
    """A full-volume week (tables only, about a second): daily cycles and every incident kind."""
    return Simulation(SimulationConfig(days=7, seed=11, invalid_fraction=0.0))


@pytest.fixture(scope="session")
def week_frames(week_sim: Simulation) -> dict[str, dict[str, np.ndarray]]:
    """The week's events as named columns per topic (dimension codes decoded to names).

    Read from the generated tables rather than the encoded records, which would take a minute
    of test time at this volume; test_sim_records checks that records carry the same events.
    """
    frames = {}
    for topic, table in week_sim.tables.items():
        columns = {"ts_ms": table.ts_ms}
        for name, values in table.columns.items():
            names = DIMENSION_VALUES.get(name)
            columns[name] = np.asarray(names)[values] if names else values
        if topic == "seller_onboarding":
            columns["decision"] = np.where(table["approved"], "approved", "rejected")
        frames[topic] = columns
    return frames
