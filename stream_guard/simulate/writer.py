"""Files of a simulated run: events.jsonl (one Kafka record per line) and labels.json.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     summary = write_simulation(Path(tmp), days=1, seed=1, scale=0.005)
...     lines = summary.events_path.read_bytes().count(b"\\n")
>>> lines == summary.total, summary.incidents
(True, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from stream_guard.simulate.records import Record
from stream_guard.simulate.simulation import DEFAULT_START, Simulation, SimulationConfig

__all__ = ["Progress", "SimulationSummary", "iter_records", "write_simulation"]

Progress = Callable[[int, int], None]
"""Called as progress(records written so far, total records) after each chunk."""


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a run wrote: valid events per topic, invalid and late counts, and where."""

    events_path: Path
    labels_path: Path
    counts: Mapping[str, int]
    invalid: int
    invalid_by_kind: Mapping[str, int]
    late: int
    incidents: int

    @property
    def events(self) -> int:
        """Valid events (all topics)."""
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        """Lines in events.jsonl."""
        return self.events + self.invalid


def iter_records(
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
    scale: float = 1.0,
    invalid_fraction: float = 0.0005,
    scenario: str = "default",
) -> Iterator[Record]:
    """The records `write_simulation` would write, in the same order, without a file."""
    config = SimulationConfig(days, seed, start, scale, invalid_fraction, scenario=scenario)
    return Simulation(config).records()


def write_simulation(
    out_dir: Path,
    days: int,
    seed: int,
    start: datetime = DEFAULT_START,
    scale: float = 1.0,
    invalid_fraction: float = 0.0005,
    progress: Progress | None = None,
    scenario: str = "default",
) -> SimulationSummary:
    """Simulate, write `out_dir/events.jsonl` and `out_dir/labels.json`: same args, same bytes."""
    simulation = Simulation(
        SimulationConfig(days, seed, start, scale, invalid_fraction, scenario=scenario)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = out_dir / "events.jsonl", out_dir / "labels.json"
    written, total = 0, simulation.total
    with events_path.open("wb") as out:
        for chunk in simulation.chunks():
            out.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in chunk))
            written += len(chunk)
            if progress is not None:
                progress(written, total)
    labels_path.write_bytes(_dump(simulation.labels()))
    return SimulationSummary(
        events_path=events_path,
        labels_path=labels_path,
        counts=simulation.counts,
        invalid=sum(simulation.invalid_counts.values()),
        invalid_by_kind=simulation.invalid_counts,
        late=simulation.late_count,
        incidents=len(simulation.incidents),
    )


def _dump(labels: dict[str, Any]) -> bytes:
    return orjson.dumps(labels, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
