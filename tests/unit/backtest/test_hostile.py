"""Hostile input (issue 10, item 8): a simulated dump with every kind of bad record injected
(stream_guard/simulate/hostile.py) replays like a clean one.

One clean and one dirty `stream-guard replay`, each in its own process, per session (made by
tests/hostile.py, shared with tests/integration/test_hostile_live.py): both exit 0; the dirty
run's peak RSS stays within a margin of the clean run's; every injected line gets its kind's
outcome (the dead-letter reasons on its line, or the summary counter it belongs in);
no record of the clean dump is dead-lettered; the alert records are the clean run's. Kinds in
`PENDING` are neither injected nor judged: their test is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stream_guard.simulate.hostile import (
    KINDS,
    PENDING,
    Injection,
    ReplayRun,
    Verdict,
    counter_deltas,
    judge,
    stray_dead_letters,
    write_hostile,
)
from tests.hostile import ACTIVE, SEED, HostileRuns

RSS_MARGIN_MB = 64
"""What the dirty run may use beyond the clean run's peak (measured: +3 MB)."""


@dataclass(frozen=True)
class Runs:
    clean_dump: Path
    dirty_dump: Path
    clean: ReplayRun
    dirty: ReplayRun
    injections: list[Injection]
    verdicts: dict[str, Verdict]


@pytest.fixture(scope="session")
def runs(hostile_runs: HostileRuns) -> Runs:
    """The session's dumps and replays (tests/hostile.py; test_hostile_live.py uses them too)."""
    h = hostile_runs
    verdicts = judge(ACTIVE, h.injections, h.dirty.dead_letters, counter_deltas(h.clean, h.dirty))
    return Runs(h.clean_dump, h.dirty_dump, h.clean, h.dirty, h.injections,
                {v.kind: v for v in verdicts})


def test_the_table_has_50_documented_kinds_and_pending_names_exist() -> None:
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names) >= 50
    assert all(k.doc and k.count >= 1 for k in KINDS)
    assert set(PENDING) <= set(names)


def test_both_replays_exit_0(runs: Runs) -> None:
    for run in (runs.clean, runs.dirty):
        assert run.exit_code == 0, run.stderr[-3000:]


def test_memory_stays_within_a_margin_of_the_clean_run(runs: Runs) -> None:
    assert runs.dirty.peak_rss_mb <= runs.clean.peak_rss_mb + RSS_MARGIN_MB, (
        f"clean {runs.clean.peak_rss_mb:.0f} MB, dirty {runs.dirty.peak_rss_mb:.0f} MB")


def test_the_alerts_are_the_clean_runs(runs: Runs) -> None:
    assert runs.clean.alerts, "the clean run raised no alert: nothing to compare"
    assert runs.dirty.alerts == runs.clean.alerts


def test_no_record_of_the_clean_dump_is_dead_lettered(runs: Runs) -> None:
    assert runs.clean.dead_letters == []
    assert stray_dead_letters(runs.injections, runs.dirty.dead_letters) == []


def test_injection_keeps_every_record_and_is_deterministic(runs: Runs, tmp_path: Path) -> None:
    clean = runs.clean_dump.read_bytes().splitlines()
    dirty = runs.dirty_dump.read_bytes().splitlines()
    injected = {inj.line for inj in runs.injections}
    kept = [line for n, line in enumerate(dirty, 1) if n not in injected]
    stood_in = sum(k.count for k in ACTIVE if k.replaces)
    assert len(kept) == len(clean) - stood_in and set(kept) <= set(clean)
    again = write_hostile(runs.clean_dump, tmp_path / "again.jsonl", ACTIVE, seed=SEED)
    assert again == runs.injections
    assert (tmp_path / "again.jsonl").read_bytes() == runs.dirty_dump.read_bytes()


@pytest.mark.parametrize("name", [
    pytest.param(k.name, marks=pytest.mark.skip(reason=f"pending: {PENDING[k.name]}"))
    if k.name in PENDING else k.name
    for k in KINDS
])
def test_each_kind_gets_its_outcome(runs: Runs, name: str) -> None:
    verdict = runs.verdicts[name]
    assert verdict.ok, f"{name}: expected {verdict.expected}; observed {verdict.observed}"
