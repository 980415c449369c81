"""Encoding table rows into Kafka records: `{"topic", "key", "value"}` as in topics/*.yaml.

Encoding happens chunk by chunk in arrival order, so only the rows being written ever become
Python objects. Ids derive from the row number (rows are in event-time order), which makes
them unique per topic and stable for a seed: order o-00000042 is the 43rd order of the run.

>>> encoder = Encoder(seller_count=10, actions=())
>>> table = Table("listings", np.array([1_772_460_600_120]), {
...     "region": np.array([1]), "category": np.array([4]), "seller_tier": np.array([3]),
...     "seller": np.array([7]), "epoch_ts": np.array([False]), "extra": np.array([False])})
>>> encoder.encode(table, np.array([0]))[0]
{'topic': 'listings', 'key': 's-000007', 'value': {'event_id': 'ev-l-00000000', \
'ts': '2026-03-02T14:10:00.120Z', 'listing_id': 'l-00000000', 'seller_id': 's-000007', \
'region': 'EU', 'category': 'toys', 'seller_tier': 'new'}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stream_guard.simulate.catalog import COMPLAINT_REASONS, POLICIES, SOURCES
from stream_guard.simulate.governance import GovernanceAction
from stream_guard.simulate.tables import DIMENSION_VALUES, Table

__all__ = ["APP_VERSIONS", "Encoder", "Record"]

Record = dict[str, Any]
APP_VERSIONS = ("7.3.0", "7.3.1", "7.4.0-beta")  # the harmless extra field some events carry
_PREFIX = {
    "orders": "o",
    "complaints": "c",
    "listings": "l",
    "violations": "v",
    "seller_onboarding": "n",
    "governance_actions": "g",
}
_DIMENSIONS = ("region", "category", "seller_tier")
Columns = list[tuple[str, list[Any]]]


def _ids(prefix: str, numbers: np.ndarray, width: int = 8) -> list[str]:
    return [f"{prefix}-{n:0{width}d}" for n in numbers.tolist()]


def _names(values: Sequence[str], codes: np.ndarray) -> list[str]:
    return list(np.asarray(values, dtype=object)[codes].tolist())


def _dimension(table: Table, rows: np.ndarray, dimension: str) -> tuple[str, list[Any]]:
    return dimension, _names(DIMENSION_VALUES[dimension], table[dimension][rows])


def _timestamps(ts_ms: np.ndarray, epoch: np.ndarray) -> list[Any]:
    """ISO-8601 UTC with milliseconds and Z, or epoch milliseconds where `epoch` is set."""
    text = np.datetime_as_string(ts_ms.astype("datetime64[ms]"), unit="ms").astype(object) + "Z"
    text[epoch] = ts_ms[epoch].astype(object)
    return list(text.tolist())


class Encoder:
    """Turns rows of any generated table into records; knows the seller ids and the actions."""

    def __init__(self, seller_count: int, actions: Sequence[GovernanceAction]) -> None:
        self._sellers = np.asarray(_ids("s", np.arange(seller_count), 6), dtype=object)
        self._actions = actions
        self._fields: dict[str, Callable[[Table, np.ndarray], Columns]] = {
            "orders": self._orders,
            "complaints": self._complaints,
            "listings": self._listings,
            "violations": self._violations,
            "seller_onboarding": self._onboarding,
        }

    def encode(self, table: Table, rows: np.ndarray) -> list[Record]:
        """Records for `rows` of `table`, in the order given."""
        if table.topic == "governance_actions":
            return self._governance(table, rows)
        prefix = _PREFIX[table.topic]
        columns: Columns = [
            ("event_id", _ids(f"ev-{prefix}", rows)),
            ("ts", _timestamps(table.ts_ms[rows], table["epoch_ts"][rows])),
            *self._fields[table.topic](table, rows),
        ]
        names = [name for name, _ in columns]
        rows_of_values = zip(*(column for _, column in columns), strict=True)
        values = [dict(zip(names, row, strict=True)) for row in rows_of_values]
        for i in np.flatnonzero(table["extra"][rows]).tolist():
            values[i]["app_version"] = APP_VERSIONS[int(rows[i]) % len(APP_VERSIONS)]
        keys = self._sellers[table["seller"][rows]].tolist()
        return [
            {"topic": table.topic, "key": k, "value": v} for k, v in zip(keys, values, strict=True)
        ]

    def _seller_and_dimensions(self, table: Table, rows: np.ndarray) -> Columns:
        return [
            ("seller_id", self._sellers[table["seller"][rows]].tolist()),
            *(_dimension(table, rows, d) for d in _DIMENSIONS),
        ]

    def _orders(self, table: Table, rows: np.ndarray) -> Columns:
        return [
            ("order_id", _ids("o", rows)),
            ("buyer_id", _ids("b", table["buyer"][rows], 7)),
            *self._seller_and_dimensions(table, rows),
            _dimension(table, rows, "payment_method"),
            _dimension(table, rows, "channel"),
            ("gmv", table["gmv"][rows].tolist()),
        ]

    def _complaints(self, table: Table, rows: np.ndarray) -> Columns:
        return [
            ("complaint_id", _ids("c", rows)),
            ("order_id", _ids("o", table["order"][rows])),
            *self._seller_and_dimensions(table, rows),
            ("reason", _names(COMPLAINT_REASONS, table["reason"][rows])),
        ]

    def _listings(self, table: Table, rows: np.ndarray) -> Columns:
        return [("listing_id", _ids("l", rows)), *self._seller_and_dimensions(table, rows)]

    def _violations(self, table: Table, rows: np.ndarray) -> Columns:
        return [
            ("listing_id", _ids("l", table["listing"][rows])),
            *self._seller_and_dimensions(table, rows),
            ("policy", _names(POLICIES, table["policy"][rows])),
            ("source", _names(SOURCES, table["source"][rows])),
        ]

    def _onboarding(self, table: Table, rows: np.ndarray) -> Columns:
        approved = table["approved"][rows]
        return [
            ("seller_id", self._sellers[table["seller"][rows]].tolist()),
            _dimension(table, rows, "region"),
            _dimension(table, rows, "category"),
            ("decision", np.where(approved, "approved", "rejected").tolist()),
            ("flagged_bad", table["flagged_bad"][rows].tolist()),
        ]

    def _governance(self, table: Table, rows: np.ndarray) -> list[Record]:
        stamps = _timestamps(table.ts_ms[rows], table["epoch_ts"][rows])
        records = []
        for row, ts in zip(rows.tolist(), stamps, strict=True):
            action = self._actions[int(table["action"][row])]
            value = action.value(event_id=f"ev-g-{row:08d}", ts=ts)
            records.append({"topic": table.topic, "key": action.action_id, "value": value})
        return records
