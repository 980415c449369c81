"""The inputs of benchmarks/scale.py: 100 generated metric rules and a backlog with a
100,000-value seller dimension (seeded: same arguments, same files).

Rules are the shipped ones (alert_rules/) varied: window, dimensions (a subset of the shipped
ones, or ``seller_id`` alone, or ``seller_id`` with the region), direction. One rule in
`SELLER_EVERY` slices by seller. routes.yaml and calendar.yaml are copied as they are.

The simulator's seller pool has 12,000 sellers; the backlog is the simulated dump with every
``seller_id`` re-drawn from `SELLERS` sellers with Zipf-like popularity (a few big sellers, a
long tail), so the dimension has up to 100,000 values (how many a backlog reaches is printed).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("gmv", "complaint_rate", "violation_rate", "bad_seller_onboarding_rate")
SELLERS = 100_000
SELLER_EVERY = 5
"""Every 5th generated rule has a seller dimension: 20 of 100."""
WINDOWS = ("5m", "15m", "30m", "1h")
ZIPF_S = 0.8
"""Popularity of the k-th seller ~ 1/k^0.8: the top 1% of sellers carry ~40% of the orders."""


def shipped_rules() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load((REPO / "alert_rules" / f"{name}.yaml").read_text())
            for name in SHIPPED}


def variant(base: dict[str, Any], i: int) -> dict[str, Any]:
    """The i-th generated rule from `base`: a new name, window and dimensions."""
    rule = dict(base, metric=f"{base['metric']}_v{i:03d}", window=WINDOWS[(i // 4) % 4])
    dims = list(base.get("dimensions", []))
    if i % SELLER_EVERY == SELLER_EVERY - 1:
        dims = ["seller_id"] if i % 2 else ["seller_id", "region"]
    elif dims:
        k = 1 + (i // 16) % len(dims)
        start = (i // 4) % len(dims)
        dims = [dims[(start + j) % len(dims)] for j in range(k)]
    rule["dimensions"] = dims
    rule["pairs"] = [p for p in base.get("pairs", []) if set(p) <= set(dims)]
    rule.pop("version", None)
    return rule


def write_rules(out: Path, count: int = 100) -> list[str]:
    """`count` rule files in `out` (routes and calendar copied); their metric names."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("routes.yaml", "calendar.yaml"):
        shutil.copy(REPO / "alert_rules" / name, out / name)
    bases = list(shipped_rules().values())
    names = []
    for i in range(count):
        rule = variant(bases[i % len(bases)], i)
        (out / f"{rule['metric']}.yaml").write_text(yaml.safe_dump(rule, sort_keys=False))
        names.append(rule["metric"])
    return names


def seller_ids(n: int, seed: int) -> np.ndarray:
    """`n` seller numbers drawn from SELLERS sellers, Zipf-like (seeded)."""
    weights = 1.0 / np.arange(1, SELLERS + 1) ** ZIPF_S
    rng = np.random.default_rng(seed)
    return rng.choice(SELLERS, size=n, p=weights / weights.sum())


def reseller(src: Path, dst: Path, seed: int) -> int:
    """`src` (a JSONL dump) with every seller_id re-drawn; returns the distinct sellers."""
    lines = src.read_bytes().splitlines()
    drawn = iter(seller_ids(len(lines), seed).tolist())
    seen: set[int] = set()
    with dst.open("wb") as out:
        for chunk in _chunks(lines, 50_000):
            out.write(b"".join(_reseller_line(line, drawn, seen) for line in chunk))
    return len(seen)


def _chunks(lines: list[bytes], size: int) -> Iterator[list[bytes]]:
    for i in range(0, len(lines), size):
        yield lines[i:i + size]


def _reseller_line(line: bytes, drawn: Iterator[int], seen: set[int]) -> bytes:
    """One dump line with its seller_id re-drawn (lines that are not JSON objects with a
    string seller_id, e.g. the dump's invalid records, are kept as they are)."""
    seller = next(drawn)
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line + b"\n"
    value = record.get("value") if isinstance(record, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("seller_id"), str):
        return line + b"\n"
    value["seller_id"] = f"s-{seller:06d}"
    if record.get("key") is not None:  # keyed by seller: partitions follow the new ids
        record["key"] = value["seller_id"]
    seen.add(seller)
    return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
