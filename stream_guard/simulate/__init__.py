"""Synthetic e-commerce traffic with labelled incidents, fully determined by a seed.

`write_simulation` writes a record dump (``events.jsonl``, one Kafka record per line, in arrival
order) and the ground truth (``labels.json``) for the backtest; `iter_records` yields the same
records in memory. Modules, in the order a run uses them:

- catalog.py      dimension values, mixes and base rates of the marketplace
- seasonality.py  daily cycle, weekend effect, slow drift (the only normal variation)
- incidents.py    what goes wrong where and when; the labels
- governance.py   rule launches behind intervention incidents, benign everyday actions
- sellers.py      the seller population (consistent ids and attributes)
- tables.py       numpy column tables and vectorised draws
- orders.py, listings.py, onboarding.py   the topics' events, incidents applied
- records.py      rows → Kafka records as in topics/*.yaml
- invalid.py      corrupted extra records for the dead-letter path
- simulation.py   one run: arrival order (jitter, late events), chunked encoding
- writer.py       the two files and the summary;  cli.py: `stream-guard simulate`

>>> records = list(iter_records(days=1, seed=1, scale=0.002))
>>> len(records) > 250, records[0]["topic"] in TOPICS
(True, True)
"""

from stream_guard.simulate.incidents import Incident
from stream_guard.simulate.simulation import (
    DEFAULT_START,
    TOPICS,
    Simulation,
    SimulationConfig,
)
from stream_guard.simulate.writer import SimulationSummary, iter_records, write_simulation

__all__ = [
    "DEFAULT_START",
    "TOPICS",
    "Incident",
    "Simulation",
    "SimulationConfig",
    "SimulationSummary",
    "iter_records",
    "write_simulation",
]
