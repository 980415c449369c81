"""Other metrics anomalous at the same time and in overlapping slices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stream_guard.explain.context import overlaps
from stream_guard.types import Direction, RootCauseHint, SliceKey, format_slice, slice_dict

__all__ = ["CoMoving"]


@dataclass(frozen=True, slots=True)
class _Window:
    start_ms: int
    end_ms: int
    slices: Mapping[SliceKey, Direction]


class CoMoving:
    """The latest anomalous window of each metric."""

    def __init__(self) -> None:
        self._last: dict[str, _Window] = {}

    def record(
        self, metric: str, start_ms: int, end_ms: int, slices: Mapping[SliceKey, Direction]
    ) -> None:
        self._last[metric] = _Window(start_ms, end_ms, dict(slices))

    def hints(
        self, metric: str, start_ms: int, end_ms: int, labels: Mapping[str, str]
    ) -> list[RootCauseHint]:
        out = []
        for other, w in sorted(self._last.items()):
            if other == metric or not (w.start_ms < end_ms and start_ms < w.end_ms):
                continue
            matching = [(k, d) for k, d in w.slices.items() if overlaps(dict(k), labels)]
            if not matching:
                continue
            key, direction = min(matching, key=lambda kd: len(kd[0]))
            out.append(RootCauseHint(
                "metric", f"{other} also anomalous ({direction}) in {format_slice(key)}",
                {"metric": other, "slice": slice_dict(key), "direction": direction},
            ))
        return out
