"""Invalid records, mixed into the dump so that ingest's dead-letter path gets exercised.

Each invalid record is a corrupted *copy* of the valid record just before it in arrival order,
with a fresh event id: the valid record is still there, so invalid ones never change what the
labels count. Kinds rotate so every kind appears once there are six or more.

>>> record = {"topic": "orders", "key": "s-000001", "value": {"event_id": "ev-o-1",
...           "ts": "2026-03-02T14:10:00.120Z", "gmv": 12.5}}
>>> corrupt(record, "gmv_as_string", choice=0, number=3)["value"]
{'event_id': 'ev-x-00000003', 'ts': '2026-03-02T14:10:00.120Z', 'gmv': '12.50'}
>>> corrupt(record, "naive_ts", choice=0, number=3)["value"]["ts"]
'2026-03-02T14:10:00.120'
>>> sorted(corrupt(record, "not_json", choice=1, number=3))
['key', 'topic', 'value_raw']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from stream_guard.simulate.records import Record

__all__ = ["INVALID_KINDS", "REQUIRED", "InvalidPlan", "corrupt", "plan_invalid"]

INVALID_KINDS = (
    "missing_field", "gmv_as_string", "negative_gmv", "unparseable_ts", "naive_ts", "not_json",
)  # fmt: skip
_NEEDS_ORDER = ("gmv_as_string", "negative_gmv")
REQUIRED = {  # the `required` lists of topics/*.yaml
    "orders": ("event_id", "ts", "order_id", "buyer_id", "seller_id", "region", "category",
               "seller_tier", "payment_method", "channel", "gmv"),
    "complaints": ("event_id", "ts", "complaint_id", "order_id", "seller_id", "region",
                   "category", "seller_tier", "reason"),
    "listings": ("event_id", "ts", "listing_id", "seller_id", "region", "category", "seller_tier"),
    "violations": ("event_id", "ts", "listing_id", "seller_id", "region", "category",
                   "seller_tier", "policy", "source"),
    "seller_onboarding": ("event_id", "ts", "seller_id", "region", "category", "decision",
                          "flagged_bad"),
    "governance_actions": ("event_id", "ts", "action_id", "kind", "scope", "description"),
}  # fmt: skip
_BAD_TS = ("2026-02-30T25:61:00Z", "yesterday 14:10", "", "1772460600120ms", "2026/03/02 14:10")
_GARBAGE = ("<html><body>502 Bad Gateway</body></html>", "order,EU,toys,12.50", "\x00\x01??")


@dataclass(frozen=True, slots=True)
class InvalidPlan:
    """Where invalid records go: after valid arrival position `after[i]`, of kind `kinds[i]`."""

    after: np.ndarray
    kinds: np.ndarray
    choices: np.ndarray  # a random number per record for the details (which field, which text)

    def __len__(self) -> int:
        return len(self.after)


def plan_invalid(is_order: np.ndarray, fraction: float, rng: np.random.Generator) -> InvalidPlan:
    """About `fraction` x the valid count of invalid records; `is_order` flags arrival slots."""
    count = int(rng.binomial(len(is_order), fraction))
    if count == 0:
        empty = np.zeros(0, dtype=np.int64)
        return InvalidPlan(empty, empty, empty)
    kinds = rng.permutation(np.arange(count) % len(INVALID_KINDS))
    gmv_kinds = [INVALID_KINDS.index(k) for k in _NEEDS_ORDER]
    orders = np.flatnonzero(is_order)
    if not len(orders):  # nothing has a gmv to spoil: spoil a required field instead
        kinds[np.isin(kinds, gmv_kinds)] = INVALID_KINDS.index("missing_field")
        orders = np.arange(len(is_order))
    anywhere = rng.integers(0, len(is_order), size=count)
    an_order = orders[rng.integers(0, len(orders), size=count)]
    after = np.where(np.isin(kinds, gmv_kinds), an_order, anywhere)
    order = np.argsort(after, kind="stable")
    return InvalidPlan(after[order], kinds[order], rng.integers(0, 1 << 30, size=count)[order])


def corrupt(record: Record, kind: str, choice: int, number: int) -> Record:
    """An invalid copy of `record` (a valid one) of the given kind."""
    value = {**record["value"], "event_id": f"ev-x-{number:08d}"}
    if kind == "not_json":
        text = orjson.dumps(value).decode()
        raw = [text[: len(text) // 2], *_GARBAGE][choice % (len(_GARBAGE) + 1)]
        return {"topic": "orders", "key": None, "value_raw": raw}
    if kind == "missing_field":
        required = REQUIRED[record["topic"]]
        del value[required[choice % len(required)]]
    elif kind == "gmv_as_string":
        value["gmv"] = f"{value['gmv']:.2f}"
    elif kind == "negative_gmv":
        value["gmv"] = -round(abs(value["gmv"]) + 0.01, 2)
    elif kind == "unparseable_ts":
        value["ts"] = _BAD_TS[choice % len(_BAD_TS)]
    elif kind == "naive_ts":
        value["ts"] = _naive(value["ts"])
    return {"topic": record["topic"], "key": record["key"], "value": value}


def _naive(ts: str | int) -> str:
    """The same instant written without a zone (an epoch ts becomes ISO first)."""
    if isinstance(ts, int):
        ts = str(np.datetime_as_string(np.datetime64(ts, "ms"), unit="ms"))
    return ts.removesuffix("Z")
