"""The owner's write order (runtime/checkpoint.py): a crash between ANY two writes -- alerts,
models, windows, acks, positions -- and a restart give the alerts of a run that never crashed
(records interrupted by the crash may be written again, verbatim), whether the restart is
delivered from what was acked or, as Faust may commit, from beyond it; and messages Faust
skips without delivering them are read back from the log. Both with a save on nearly every
close and with saves coalesced over several closes (a crash inside a save of several models
restores the save before it)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.engine import Engine
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.kafka_batch import record_partition
from stream_guard.runtime.checkpoint import Checkpoint
from stream_guard.runtime.owner import Owner, Owners
from stream_guard.runtime.reports import Report, Tick
from stream_guard.runtime.sources import SourcePool, expected_sources
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord
from tests.parity import arrivals, comparable, raw_value

BATCH = 400
TICK_EVERY = 25  # messages


class Crash(Exception):
    """The SIGKILL."""


class Writes:
    """Counts every write; raises Crash at write number `crash_at`."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.n, self.crash_at = 0, crash_at
        self.kinds: list[str] = []
        self.message = 0  # the message being delivered
        self.messages: list[int] = []  # per write, its message

    def __call__(self, kind: str) -> None:
        if self.n == self.crash_at:
            raise Crash
        self.n += 1
        self.kinds.append(kind)
        self.messages.append(self.message)


class Table(dict[str, str]):
    def __init__(self, writes: Writes) -> None:
        super().__init__()
        self.writes = writes

    def __setitem__(self, key: str, value: str) -> None:
        self.writes("position" if key.startswith("position/") else key.split("/")[1])
        super().__setitem__(key, value)


@pytest.fixture(scope="module")
def setup(rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec]) -> Any:
    rules = [r for r in rules if r.metric in ("gmv", "complaint_rate")]
    records = list(Simulation(SimulationConfig(days=3, seed=3, scale=0.3)).records())
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    partitions = {name: spec.partitions for name, spec in topics.items()}
    arrival = arrivals(records)
    messages: list[Report | Tick] = []
    for start in range(0, len(records), BATCH):
        for i, rec in enumerate(records[start:start + BATCH], start):
            key, n = rec.get("key"), partitions[rec["topic"]]
            p = record_partition(key, n)
            pool.ingest(rec["topic"], p, i, raw_value(rec), arrival[i])
        messages += pool.reports(start)
        if (start // BATCH) % TICK_EVERY == 0:
            messages += [Tick(r.metric, start) for r in rules]
    return rules, expected_sources(rules, partitions), messages


SAVES = {"each-close": (7, 1), "coalesced": (60, 4)}
"""(save_every, hold) of the runs: a save every 7 messages or close, or every 60 or 4 closes."""


@pytest.fixture(scope="module", params=sorted(SAVES))
def saves(request: pytest.FixtureRequest) -> tuple[int, int]:
    return SAVES[request.param]


class Run:
    """One worker's life: delivers messages from `first` to `last`, crashing at the write
    `writes` says; `resume` is then where a restart starts (the first message not acked)."""

    def __init__(self, setup: Any, table: Table, published: list[AlertRecord],
                 saves: tuple[int, int] = SAVES["each-close"]) -> None:
        self.rules, self.sources, self.messages = setup
        self.table, self.published = table, published
        self.writes = table.writes
        self.saves = saves
        self.gaps: list[tuple[int, int]] = []  # read back from the log
        self.closes = 0  # windows closed
        self.flushes = False  # a save waits for its writes (counted as a "flush" write)

    def checkpoint(self) -> Checkpoint:
        owners = Owners(self.rules, 1, lambda group, stats: Owner(
            Engine(group, stats=stats), self.sources, 10_000))
        return Checkpoint(owners, self.table, self._publish, save_every=self.saves[0],
                          read_log=self._read_log, hold=self.saves[1],
                          flush=self._flush if self.flushes else None)

    async def _flush(self) -> None:
        self.writes("flush")

    def __call__(self, first: int, last: int, skip: range = range(0)) -> int | None:
        """Delivers messages [first, last) but those in `skip` (dropped by Faust's stream)."""
        checkpoint = self.last = self.checkpoint()
        acked: set[int] = set()

        def ack(i: int) -> Callable[[], None]:
            def done() -> None:  # in delivery order, so that Faust's commit means something
                assert not any(j not in acked and j not in skip for j in range(first, i)), (
                    f"message {i} acked before an earlier one")
                self.writes("ack")
                acked.add(i)
            return done

        async def deliver() -> None:
            for i in range(first, last):
                self.writes.message = i
                if i not in skip:
                    closed = await checkpoint.on_message((0, i), self.messages[i], ack(i))
                    self.closes += len(closed.closes)

        try:
            asyncio.run(deliver())
        except Crash:
            return next(i for i in range(first, last + 1) if i not in acked)
        return None

    async def _read_log(self, partition: int, lo: int, hi: int) -> list[tuple[int, Any]]:
        self.gaps.append((lo, hi))
        return [(i, self.messages[i]) for i in range(lo, hi)]

    async def _publish(self, records: list[AlertRecord]) -> None:
        for record in records:
            self.writes("alert")
            self.published.append(record)


def _unique(alerts: list[AlertRecord]) -> list[Any]:
    return list(dict.fromkeys(str(comparable(a)) for a in alerts))


@pytest.fixture(scope="module")
def steady(setup: Any, saves: tuple[int, int]) -> tuple[list[str], int, int]:
    """The writes of an uninterrupted run, the last alert's write, and the end of the stretch
    the crashes look at: a little after the message of the last alert."""
    table, published = Table(Writes()), []
    run = Run(setup, table, published, saves)
    assert run(0, len(setup[2])) is None and published, "the input pages"
    kinds = table.writes.kinds
    last_alert = max(k for k, kind in enumerate(kinds) if kind == "alert")
    stop = min(len(setup[2]), table.writes.messages[last_alert] + 200)
    return kinds, last_alert, stop


def _crash_points(kinds: list[str], last_alert: int) -> list[int]:
    """Every write around the first alerts (each pair of alert, model, windows and ack writes),
    a spread up to the last alert, and inside the first saves of several models after the
    first alert (between two models, and between the last window and the position)."""
    first = kinds.index("alert")
    inside = [k for k in range(first, last_alert) if kinds[k - 1] == "model" == kinds[k]][:3]
    ends = [k for k in range(first, last_alert) if kinds[k] == "position"][:2]
    return sorted({*range(first - 5, first + 12), *inside, *ends,
                   *range(first, last_alert + 1, max(1, (last_alert - first) // 6))})


def test_every_crash_point_restarts_into_the_steady_alerts(
    setup: Any, saves: tuple[int, int], steady: tuple[list[str], int, int]
) -> None:
    kinds, last_alert, stop = steady
    points = _crash_points(kinds, last_alert)
    assert {"alert", "model", "windows", "ack"} <= {kinds[k] for k in points}
    # Every scenario starts from the same restart, taken a little before the first alert (a
    # restart from the table is itself what is under test), and ends after the last alert.
    n = len(setup[2])
    base = Table(Writes(points[0] - 40))
    start = Run(setup, base, [], saves)(0, n)
    assert start is not None
    expected_table = Table(Writes())
    expected_table.update(base)
    expected: list[AlertRecord] = []
    assert Run(setup, expected_table, expected, saves)(start, stop) is None
    for n, crash_at in enumerate(points):
        table = Table(Writes(crash_at - base.writes.n))
        table.update(base)
        published: list[AlertRecord] = []
        run = Run(setup, table, published, saves)
        resume = run(start, stop)
        assert resume is not None, f"no crash at write {crash_at}"
        # every other crash, Faust had committed all it delivered: resume past the unsaved,
        # which are read back from the log (from no later than the first message not acked)
        unacked, resume = resume, table.writes.message if n % 2 else resume
        table.writes.crash_at = None
        assert run(resume, stop) is None
        if resume > unacked:
            assert run.gaps and run.gaps[0][0] <= unacked < resume == run.gaps[0][1]
        assert _unique(published) == _unique(expected), (
            f"crash before write {crash_at} ({kinds[crash_at]}), resumed at {resume}")


def test_messages_faust_skips_are_read_back_from_the_log(
    setup: Any, saves: tuple[int, int], steady: tuple[list[str], int, int]
) -> None:
    """A stream acks, without delivering them, messages fetched during a rebalance: the owner
    sees a gap in the offsets and reads it from the log, in order; the alerts do not change."""
    stop = steady[2]
    steady_alerts: list[AlertRecord] = []
    Run(setup, Table(Writes()), steady_alerts, saves)(0, stop)
    published: list[AlertRecord] = []
    run = Run(setup, Table(Writes()), published, saves)
    skip = range(stop // 3, stop // 3 + 50)
    assert run(0, stop, skip) is None
    assert run.gaps == [(skip.start, skip.stop)]
    assert _unique(published) == _unique(steady_alerts)


def test_models_are_saved_once_per_hold_closes(setup: Any) -> None:
    """With no message bound, a partition's models are saved when one of its metrics has
    closed `hold` windows: far fewer model writes than closes, the same alerts as a save on
    every close, and every save is whole (each model and window before its position)."""
    runs = {}
    for hold in (1, 6):
        table, published = Table(Writes()), []
        run = Run(setup, table, published, (10**9, hold))
        assert run(0, len(setup[2])) is None
        runs[hold] = run, table.writes.kinds, published
    (each, each_kinds, each_alerts), (held, kinds, alerts) = runs[1], runs[6]
    assert each.closes == held.closes > 100
    assert each_kinds.count("model") > each.closes / 2  # (windows closed together: one save)
    assert kinds.count("model") <= each_kinds.count("model") / 3
    assert 0 < kinds.count("position") < each_kinds.count("position")
    assert _unique(alerts) == _unique(each_alerts)


def _owner_state(checkpoint: Checkpoint) -> list[Any]:
    owner = checkpoint.owners.of(0)
    assert owner is not None
    trackers = [owner.engine.metric_state(m).tracker for m in sorted(owner.mergers)]
    return [sorted((m, merger.state.closed_until) for m, merger in owner.mergers.items()),
            [(repr(t.episodes), sorted(t.pending.items()), sorted(t.cooldowns.items()))
             for t in trackers],
            sorted(a.action_id for a in owner.engine.shared_state().interventions._actions)]


def test_a_crash_inside_a_save_restores_the_save_before(
    setup: Any, steady: tuple[list[str], int, int], saves: tuple[int, int]
) -> None:
    """A save of several models cut by a crash: every metric restores as of the position,
    as an owner that stopped there (not one model ahead of the others, whose shared state
    would give the windows scored again other hints)."""
    kinds = steady[0]
    inside = next(k for k in range(1, len(kinds)) if kinds[k - 1] == "model" == kinds[k])
    table = Table(Writes(inside))
    crashed = Run(setup, table, [], saves)
    assert crashed(0, len(setup[2])) is not None
    position = int(table["position/partials/0"])
    restored = crashed.checkpoint()
    owner = restored.owners.of(0)
    assert owner is not None
    for rule in crashed.rules:
        restored.adopt(owner, rule.metric, 0, 0)
    stopped = Run(setup, Table(Writes()), [], saves)
    assert stopped(0, position) is None
    assert _owner_state(restored) == _owner_state(stopped.last)


def test_a_restart_before_the_first_save_reads_the_log_from_its_start(
    setup: Any, steady: tuple[list[str], int, int]
) -> None:
    """Nothing saved yet but the position the first message gave the partition: a restart
    delivered from where Faust committed reads everything before it back from the log."""
    stop = steady[2]
    never = (10**9, 10**9)
    expected: list[AlertRecord] = []
    steady_table = Table(Writes())
    assert Run(setup, steady_table, expected, never)(0, stop) is None
    kinds = steady_table.writes.kinds
    assert {"model", "windows"}.isdisjoint(kinds) and kinds[0] == "position"
    table = Table(Writes(kinds.index("alert") + 1))  # the crash: after the first alert
    published: list[AlertRecord] = []
    run = Run(setup, table, published, never)
    assert run(0, stop) is not None
    table.writes.crash_at = None
    committed = table.writes.message + 1
    assert run(committed, stop) is None
    assert run.gaps == [(0, committed)]
    assert _unique(published) == _unique(expected)


def test_each_save_waits_for_its_writes_before_the_ack(setup: Any) -> None:
    """The owner waits for the producer after each save (its writes delivered), before it
    acks and takes the next message: what it has yet to send stays one save's worth."""
    table = Table(Writes())
    run = Run(setup, table, [], SAVES["coalesced"])
    run.flushes = True
    assert run(0, 3_000) is None
    kinds = table.writes.kinds
    saves = [k for k, kind in enumerate(kinds) if kind == "position"][1:]  # ([0]: the start)
    assert saves and kinds.count("flush") == len(saves)
    assert all(kinds[k + 1:k + 3] == ["flush", "ack"] for k in saves)
