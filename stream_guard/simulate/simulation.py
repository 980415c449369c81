"""One simulated run: incidents, traffic tables, and the record stream in arrival order.

Building a `Simulation` draws everything as numpy columns (seconds for a week); `chunks()` then
encodes records lazily in arrival order: sorted by event time plus up to 1.5 s of jitter, except
~0.3% that arrive 30 s to 4 min late and keep their original `ts`. Invalid records are inserted
as extra lines. Each concern draws from its own random stream spawned from the seed, so the same
arguments always give the same records.

>>> sim = Simulation(SimulationConfig(days=2, seed=7, scale=0.01))
>>> [i.id for i in sim.incidents]
['inc-01']
>>> first = next(sim.records())
>>> first["topic"] in sim.counts, sorted(first)
(True, ['key', 'topic', 'value'])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from stream_guard.simulate.governance import GovernanceAction, attach_actions
from stream_guard.simulate.incidents import Incident, plan_incidents
from stream_guard.simulate.invalid import INVALID_KINDS, InvalidPlan, corrupt, plan_invalid
from stream_guard.simulate.listings import (
    add_seller_floods,
    generate_listings,
    generate_violations,
)
from stream_guard.simulate.onboarding import generate_onboarding
from stream_guard.simulate.orders import WeeklyShape, generate_complaints, generate_orders
from stream_guard.simulate.records import Encoder, Record
from stream_guard.simulate.scenarios import SCENARIOS, attach_sellers, scenario_incidents
from stream_guard.simulate.sellers import SellerPool
from stream_guard.simulate.tables import Table
from stream_guard.types import iso_utc

__all__ = ["DEFAULT_START", "TOPICS", "Simulation", "SimulationConfig"]

DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
TOPICS = (
    "orders", "complaints", "listings", "violations", "seller_onboarding", "governance_actions",
)  # fmt: skip
EPOCH_TS_FRACTION = 0.10  # events whose ts is epoch milliseconds instead of ISO-8601
EXTRA_FIELD_FRACTION = 0.03  # events carrying a harmless unknown field
LATE_FRACTION = 0.003
LATE_DELAY_MS = (30_000, 240_000)
JITTER_MS = 1_500
# Streams are spawned by position: a new one goes last, so the others keep their draws.
_STREAMS = ("plan", "governance", "sellers", "orders", "complaints", "listings", "violations",
            "onboarding", "format", "arrival", "invalid", "scenario")  # fmt: skip


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate: `days` from `start`, volumes times `scale`, from `seed`; `scenario`
    names the incidents and traffic shape (scenarios.py: "default" is the planner's, the others
    are opt-in); `incidents`, when given, replace the scenario's (e.g. two concurrent incidents
    on one metric, which the planner never draws)."""

    days: int
    seed: int
    start: datetime = DEFAULT_START
    scale: float = 1.0
    invalid_fraction: float = 0.0005
    incidents: tuple[Incident, ...] | None = None
    scenario: str = "default"

    def __post_init__(self) -> None:
        if self.days < 1 or self.scale <= 0 or not 0 <= self.invalid_fraction < 1:
            raise ValueError(f"bad simulation settings: {self}")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}: one of {', '.join(SCENARIOS)}")
        if self.start.tzinfo is None:
            raise ValueError("start must carry a time zone (UTC)")

    @property
    def start_ms(self) -> int:
        return (self.start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * 86_400_000


@dataclass(frozen=True, slots=True)
class _Arrivals:
    """The valid records in arrival order: topic index and row of each slot."""

    topic: np.ndarray
    row: np.ndarray
    late: int


class Simulation:
    """Everything one run generates; records are encoded on demand."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        rng = dict(
            zip(_STREAMS, np.random.default_rng(config.seed).spawn(len(_STREAMS)), strict=True)
        )
        start, days = config.start_ms, config.days
        planned = plan_incidents(start, days, rng["plan"])
        incidents = scenario_incidents(config.scenario, start, days, rng["scenario"], planned)
        if config.incidents is not None:
            incidents = list(config.incidents)
        self.incidents, self.actions = attach_actions(incidents, start, days, rng["governance"])
        self._pool = SellerPool.create(rng["sellers"])
        self.incidents = attach_sellers(self.incidents, self._pool, rng["scenario"])
        self.tables = self._generate(rng)
        self._arrivals = _arrival_order(list(self.tables.values()), rng["arrival"])
        is_order = self._arrivals.topic == TOPICS.index("orders")
        self._invalid = plan_invalid(is_order, config.invalid_fraction, rng["invalid"])
        self._encoder = Encoder(self._seller_count(), self.actions)

    def _generate(self, rng: Mapping[str, np.random.Generator]) -> dict[str, Table]:
        c, incidents, pool = self.config, self.incidents, self._pool
        weekly = SCENARIOS[c.scenario].weekly
        orders = generate_orders(c.start_ms, c.days, c.scale, incidents, pool, rng["orders"],
                                 weekly)
        listings = add_seller_floods(
            generate_listings(c.start_ms, c.days, c.scale, pool, rng["listings"]),
            incidents, pool, rng["scenario"],
        )
        tables = [
            orders,
            generate_complaints(orders, incidents, c.end_ms, rng["complaints"]),
            listings,
            generate_violations(listings, incidents, c.end_ms, rng["violations"]),
            generate_onboarding(
                c.start_ms, c.days, c.scale, incidents, pool.size, rng["onboarding"]
            ),
            _governance_table(self.actions),
        ]
        return {t.topic: _with_format(t, rng["format"]) for t in tables}

    def _seller_count(self) -> int:
        return self._pool.size + len(self.tables["seller_onboarding"])

    @property
    def counts(self) -> dict[str, int]:
        """Valid events per topic."""
        return {topic: len(table) for topic, table in self.tables.items()}

    @property
    def late_count(self) -> int:
        return self._arrivals.late

    @property
    def invalid_counts(self) -> dict[str, int]:
        """Invalid records per kind."""
        kinds = np.bincount(self._invalid.kinds, minlength=len(INVALID_KINDS)).tolist()
        return dict(zip(INVALID_KINDS, kinds, strict=True))

    @property
    def total(self) -> int:
        """Lines of the dump: valid events plus invalid records."""
        return len(self._arrivals.row) + len(self._invalid)

    def labels(self) -> dict[str, Any]:
        """The content of labels.json; an opt-in scenario adds its name and, for a weekly
        shape, the normal pattern no alert should follow ("normal")."""
        labels: dict[str, Any] = {
            "seed": self.config.seed,
            "start": iso_utc(self.config.start_ms),
            "end": iso_utc(self.config.end_ms),
            "incidents": [i.to_label() for i in self.incidents],
        }
        if self.config.scenario != "default":
            labels["scenario"] = self.config.scenario
        weekly = SCENARIOS[self.config.scenario].weekly
        if weekly != WeeklyShape():
            labels["normal"] = [{
                "kind": "weekly_shape", "weekend_change": weekly.weekend,
                "weekend_shift_hours": weekly.shift_hours,
                "description": "orders at the weekend: another level, a later daily cycle",
            }]
        return labels

    def records(self, chunk_size: int = 50_000) -> Iterator[Record]:
        """Every record of the dump, in arrival order."""
        for chunk in self.chunks(chunk_size):
            yield from chunk

    def chunks(self, chunk_size: int = 50_000) -> Iterator[list[Record]]:
        """The records in arrival order, `chunk_size` valid ones (plus invalid ones) at a time."""
        arrivals, invalid = self._arrivals, self._invalid
        tables = [self.tables[t] for t in TOPICS]
        for begin in range(0, len(arrivals.row), chunk_size):
            end = min(begin + chunk_size, len(arrivals.row))
            topic, row = arrivals.topic[begin:end], arrivals.row[begin:end]
            chunk: list[Record] = [{}] * len(row)
            for t in np.unique(topic).tolist():
                where = np.flatnonzero(topic == t)
                records = self._encoder.encode(tables[t], row[where])
                for slot, record in zip(where.tolist(), records, strict=True):
                    chunk[slot] = record
            yield _insert_invalid(chunk, begin, invalid)


def _insert_invalid(chunk: list[Record], begin: int, invalid: InvalidPlan) -> list[Record]:
    """Put each invalid record right after the valid record it corrupts."""
    low, high = np.searchsorted(invalid.after, [begin, begin + len(chunk)])
    if low == high:
        return chunk
    out: list[Record] = []
    previous = 0
    for n in range(int(low), int(high)):
        slot = int(invalid.after[n]) - begin
        out += chunk[previous : slot + 1]
        previous = slot + 1
        kind = INVALID_KINDS[int(invalid.kinds[n])]
        out.append(corrupt(chunk[slot], kind, int(invalid.choices[n]), number=n))
    return out + chunk[previous:]


def _governance_table(actions: list[GovernanceAction]) -> Table:
    ts_ms = np.array([a.ts_ms for a in actions], dtype=np.int64)
    return Table("governance_actions", ts_ms, {"action": np.arange(len(actions))})


def _with_format(table: Table, rng: np.random.Generator) -> Table:
    """Decide per event whether its ts is epoch ms and whether it carries an extra field."""
    n = len(table)
    formats = {
        "epoch_ts": rng.random(n) < EPOCH_TS_FRACTION,
        "extra": rng.random(n) < EXTRA_FIELD_FRACTION,
    }
    return Table(table.topic, table.ts_ms, {**table.columns, **formats})


def _arrival_order(tables: list[Table], rng: np.random.Generator) -> _Arrivals:
    """Sort all events by arrival = event time + jitter, or + 30 s..4 min for late ones."""
    arrival, topic, row, late_total = [], [], [], 0
    for t, table in zip((TOPICS.index(t.topic) for t in tables), tables, strict=True):
        n = len(table)
        late = rng.random(n) < LATE_FRACTION
        delay = np.where(
            late, rng.integers(*LATE_DELAY_MS, size=n), rng.integers(0, JITTER_MS, size=n)
        )
        arrival.append(table.ts_ms + delay)
        topic.append(np.full(n, t, dtype=np.int8))
        row.append(np.arange(n))
        late_total += int(late.sum())
    arrival_ms, topics, rows = (np.concatenate(a) for a in (arrival, topic, row))
    order = np.lexsort((rows, topics, arrival_ms))
    return _Arrivals(topics[order], rows[order], late_total)
