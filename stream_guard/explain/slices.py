"""Which slices explain a metric's deviation in one window.

For every anomalous slice moving in the alert's direction: its *share* of the reference
deviation (the global series' deviation, actual − expected) and its *lift*, how much more its
relative change is than the global relative change. Explanatory power = share × log(lift): a
slice that carries the whole change *and* moved far more than the platform names the cause; a
slice that merely moved like everyone else explains nothing (lift ≈ 1), so a platform-wide
change is reported as such. Between a slice and a more specific one (region=EU vs EU × card) the
power prefers the one the change is concentrated in, Adtributor/RiskLoc-style, without scanning
combinations: the detectors already said which slices are anomalous.

Ratio and mean metrics are compared in numerator units given the actual denominator
(``numerator − denominator × expected rate``), i.e. "the rate rose inside the slice"; when the
global rate moves but no slice's rate does, `mix_shift` names the slices whose share of the
denominator grew: "the mix shifted toward the slice".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stream_guard.types import (
    Direction,
    RootCauseHint,
    Score,
    SliceKey,
    format_slice,
    slice_dict,
    slice_key,
)

__all__ = ["SliceShare", "attribute", "mix_shift", "scope_share", "slice_hints"]

_REL_FLOOR = 0.01  # a global change under 1% is treated as 1% when computing lifts
_MIN_SHARE = 0.2  # slices explaining less than this are not worth a line


@dataclass(frozen=True, slots=True)
class SliceShare:
    slice: SliceKey
    share: float  # of the reference deviation, in [0, 1]
    relative_change: float  # (actual - expected) / expected inside the slice
    power: float
    score: Score


def _units(score: Score, per_unit: bool) -> tuple[float, float]:
    """(actual, expected) in summable units: numerators for ratios and means."""
    p, expected = score.point, score.expected or 0.0
    if per_unit:
        return p.numerator, p.denominator * expected
    return p.value, expected


def attribute(scores: list[Score], direction: Direction, per_unit: bool) -> list[SliceShare]:
    """The anomalous slices moving in `direction`, most explanatory first."""
    sign = 1.0 if direction == "up" else -1.0
    usable = [s for s in scores if s.expected is not None]
    glob = next((s for s in usable if not s.point.slice), None)
    candidates = [s for s in usable if s.point.slice and s.anomalous and s.direction == direction]
    if not candidates:
        return []
    devs = {s.point.slice: sign * (a - e) for s in candidates for a, e in [_units(s, per_unit)]}
    ref_dev, rel_ref = 0.0, 0.0
    if glob is not None:
        a, e = _units(glob, per_unit)
        ref_dev, rel_ref = sign * (a - e), (sign * (a - e) / e if e > 0 else 0.0)
    if ref_dev <= 0:  # the global series did not move our way: compare with the biggest slice
        ref_dev = max(devs.values())
    if ref_dev <= 0:
        return []
    out = []
    for s in candidates:
        a, e = _units(s, per_unit)
        rel = sign * (a - e) / e if e > 0 else 1.0
        share = max(0.0, min(1.0, devs[s.point.slice] / ref_dev))
        lift = min(100.0, rel / max(rel_ref, _REL_FLOOR)) if rel > 0 else 0.0
        power = share * math.log(lift) if lift > 1 else 0.0
        out.append(SliceShare(s.point.slice, share, sign * rel, power, s))
    out.sort(key=lambda x: (-x.power, -x.share, len(x.slice), x.slice))
    return out


def scope_share(
    scores: list[Score], direction: Direction, per_unit: bool
) -> Callable[[Mapping[str, str]], float | None]:
    """The share of the platform's deviation (in `direction`, summable units) that lies inside
    a scope, for intervention and calendar hints (`context.ScopeShare`): the scope's own
    series' deviation over the platform's, in [0, 1]; None when no series watches the scope
    (a combination that is not a configured pair) or the platform did not move that way.

    >>> from stream_guard.types import MetricPoint
    >>> def score(labels, actual, expected):
    ...     point = MetricPoint("gmv", slice_key(labels), 0, 1, actual, actual, 1.0)
    ...     return Score(point, 9.0, expected, True, "down")
    >>> share = scope_share([score({}, 70, 100), score({"region": "EU"}, 15, 36)], "down", False)
    >>> share({"region": "EU"}), share({}), share({"region": "NA"})
    (0.7, 1.0, None)
    """
    sign = 1.0 if direction == "up" else -1.0
    devs = {s.point.slice: sign * (a - e) for s in scores if s.expected is not None
            for a, e in [_units(s, per_unit)]}
    total = devs.get((), 0.0)

    def share(scope: Mapping[str, str]) -> float | None:
        dev = devs.get(slice_key(scope))
        return None if dev is None or total <= 0 else max(0.0, min(1.0, dev / total))

    return share


def slice_hints(shares: list[SliceShare], global_fired: bool, limit: int) -> list[RootCauseHint]:
    """Hints for the top slices; a broad change (nothing concentrated) says so first."""
    top = [s for s in shares if s.power > 0 and s.share >= _MIN_SHARE][:limit]
    hints = []
    if global_fired and not top:
        hints.append(RootCauseHint(
            "slice", "platform-wide: no slice stands out, all moved alike",
            {"slice": {}, "share": 1.0, "effect": "broad"},
        ))
    for s in top:
        hints.append(RootCauseHint(
            "slice",
            f"{format_slice(s.slice)} explains {s.share:.0%} of the change "
            f"({s.relative_change:+.0%} in the slice)",
            {"slice": slice_dict(s.slice), "share": round(s.share, 4),
             "relative_change": round(s.relative_change, 4), "effect": "level"},
        ))
    return hints


def mix_shift(
    previous: dict[SliceKey, tuple[float, float]],
    current: dict[SliceKey, tuple[float, float]],
    direction: Direction,
    limit: int = 2,
) -> list[RootCauseHint]:
    """Slices whose share of the denominator grew toward a rate on the alert's side.

    `previous`/`current` map a single-dimension slice to ``(numerator, denominator)``.
    """
    sign = 1.0 if direction == "up" else -1.0
    tot_prev = sum(d for _, d in previous.values()) or 1.0
    tot_cur = sum(d for _, d in current.values()) or 1.0
    rate_all = sum(n for n, _ in current.values()) / tot_cur
    effects = []
    for key, (num, den) in current.items():
        if den <= 0:
            continue
        grew = den / tot_cur - previous.get(key, (0.0, 0.0))[1] / tot_prev
        effect = sign * grew * (num / den - rate_all)
        if effect > 0 and grew > 0.02:
            effects.append((effect, key, grew))
    effects.sort(reverse=True)
    return [
        RootCauseHint(
            "slice", f"mix shifted toward {format_slice(key)} (+{grew:.0%} of the volume)",
            {"slice": slice_dict(key), "share_gain": round(grew, 4), "effect": "mix"},
        )
        for _, key, grew in effects[:limit]
    ]
