"""Shared by the hostile-input tests (tests/unit/backtest/test_hostile.py, and
tests/integration/test_hostile_live.py, which produces the same dirty dump into a live worker):
the dump and its two `stream-guard replay` runs, made once per session (tests/conftest.py
`hostile_runs`; tests/xdist_schedule.py keeps both modules on one xdist worker)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream_guard.simulate.hostile import (
    KINDS,
    PENDING,
    Injection,
    ReplayRun,
    run_replay,
    write_hostile,
)
from stream_guard.simulate.writer import write_simulation

__all__ = ["ACTIVE", "DAYS", "RULES", "SCALE", "SEED", "HostileRuns", "make_hostile_runs"]

RULES = Path(__file__).resolve().parents[1] / "alert_rules"
DAYS, SCALE, SEED = 3, 0.3, 11  # 140k records (dirty: ~150k lines), 9 alert records in 4 episodes
ACTIVE = [k for k in KINDS if k.name not in PENDING]


@dataclass(frozen=True)
class HostileRuns:
    """The clean simulated dump, the dirty one (every ACTIVE kind injected), and the replays
    (`stream-guard replay`, each in its own process) of both."""

    clean_dump: Path
    dirty_dump: Path
    injections: list[Injection]
    clean: ReplayRun
    dirty: ReplayRun


def make_hostile_runs(root: Path) -> HostileRuns:
    sim = write_simulation(root / "sim", days=DAYS, seed=SEED, scale=SCALE, invalid_fraction=0)
    dirty_dump = root / "dirty.jsonl"
    injections = write_hostile(sim.events_path, dirty_dump, ACTIVE, seed=SEED)
    clean = run_replay(sim.events_path, root / "clean", RULES, timeout_s=120)
    dirty = run_replay(dirty_dump, root / "dirty", RULES, timeout_s=120)
    return HostileRuns(sim.events_path, dirty_dump, injections, clean, dirty)
