"""Compiles metric rules into per-topic update plans, the hot path of aggregation.

Every event adds ``(a, b)`` to the accumulator ``[numerator, denominator]`` of each slice it
belongs to, in each metric it feeds: for sum/mean ``(value, 1)``, for count ``(1, 1)``, for the
numerator of a ratio ``(value or 1, 0)``, for its denominator ``(0, value or 1)``. One shape for
every kind of metric keeps the loop short and the partials mergeable by plain addition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_guard.config.rules import MetricRule, Source
from stream_guard.types import SliceKey

__all__ = ["Contribution", "compile_plans", "slice_keys"]

MISSING_DIM = "(none)"


@dataclass(frozen=True, slots=True)
class Contribution:
    """How events of one topic feed one metric."""

    metric_index: int
    width_ms: int
    field: str | None  # summed field; None counts events
    side: int  # 0: numerator and count (sum/count/mean); 1: ratio numerator; 2: ratio denominator
    where: tuple[tuple[str, frozenset[Any]], ...]
    dims: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]  # each pair sorted by dimension name

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(obj.get(name) in allowed for name, allowed in self.where)

    def increments(self, obj: Mapping[str, Any]) -> tuple[float, float]:
        value = float(obj[self.field]) if self.field else 1.0
        if self.side == 0:
            return value, 1.0
        return (value, 0.0) if self.side == 1 else (0.0, value)


def slice_keys(c: Contribution, obj: Mapping[str, Any]) -> list[SliceKey]:
    """The global slice, one slice per dimension and one per configured pair."""
    keys: list[SliceKey] = [()]
    get = obj.get
    for d in c.dims:
        keys.append(((d, str(get(d, MISSING_DIM))),))
    for a, b in c.pairs:
        keys.append(((a, str(get(a, MISSING_DIM))), (b, str(get(b, MISSING_DIM)))))
    return keys


def _where(src: Source) -> tuple[tuple[str, frozenset[Any]], ...]:
    return tuple(
        (name, frozenset(v if isinstance(v, list) else [v])) for name, v in src.where.items()
    )


def compile_plans(rules: list[MetricRule]) -> dict[str, list[Contribution]]:
    """Per topic, the contributions of its events to every metric."""
    plans: dict[str, list[Contribution]] = {}
    for i, rule in enumerate(rules):
        width = int(rule.window.total_seconds() * 1000)
        pairs = tuple(tuple(sorted(p)) for p in rule.pairs)
        sides = (
            [(rule.numerator, 1), (rule.denominator, 2)] if rule.value == "ratio"
            else [(rule.source, 0)]
        )
        for src, side in sides:
            assert src is not None  # guaranteed by MetricRule validation
            field = src.field if src.aggregate == "sum" or rule.value in ("sum", "mean") else None
            plans.setdefault(src.topic, []).append(
                Contribution(i, width, field, side, _where(src), tuple(rule.dimensions), pairs)  # type: ignore[arg-type]
            )
    return plans
