"""Which slices explain a metric's deviation in one window.

For every anomalous slice moving in the alert's direction: its *share* of the reference
deviation (the global series' deviation, actual − expected) and its *lift*, how much more its
relative change is than the global relative change. Explanatory power = share × log(lift): a
slice that carries the whole change *and* moved far more than the platform names the cause; a
slice that merely moved like everyone else explains nothing (lift ≈ 1), so a platform-wide
change is reported as such. Lift alone is not enough in a small window: 54 complaints spread
over regions leave a region of 15 with 0 or 4 by chance, -100% where the platform fell 83%. A
slice has power only if its change is out of proportion *given its counts* (`disproportionate`:
given the platform's events, a binomial test of its events against its usual share of them,
one-sided, Bonferroni over the candidates); otherwise the verdict is "platform-wide". Between
a slice and a more specific one (region=EU vs EU × card) the power prefers the one the change is
concentrated in, Adtributor/RiskLoc-style, without scanning combinations: the detectors
already said which slices are anomalous.

Ratio and mean metrics are compared in numerator units given the actual denominator
(``numerator − denominator × expected rate``), i.e. "the rate rose inside the slice"; when the
global rate moves but no slice's rate does, `mix_shift` names the slices whose share of the
denominator grew: "the mix shifted toward the slice".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

from stream_guard.types import (
    Direction,
    RootCauseHint,
    Score,
    SliceKey,
    format_slice,
    overlaps,
    slice_dict,
    slice_key,
)

__all__ = [
    "MIN_SHARE",
    "MIX_HALF_LIFE",
    "MixTable",
    "SliceShare",
    "attribute",
    "blend_mix",
    "broad_hint",
    "disproportionate",
    "event_size",
    "level_hint",
    "mix_shift",
    "scope_share",
    "slice_hints",
]

_REL_FLOOR = 0.01  # a global change under 1% is treated as 1% when computing lifts
MIN_SHARE = 0.2  # slices explaining less than this are not worth a line
ALPHA = 0.05  # family-wise false-alarm rate of "this slice moved out of proportion"


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


def attribute(
    scores: list[Score], direction: Direction, per_unit: bool, size: float | None = None
) -> list[SliceShare]:
    """The anomalous slices moving in `direction`, most explanatory first.

    `size` is the summable units per event (`event_size`): given it, when the platform is
    anomalous the same way, a slice has power only if its change is `disproportionate` to the
    platform's given its counts (otherwise the slice's own detector is the evidence, as the
    lift alone was); None: no test."""
    sign = 1.0 if direction == "up" else -1.0
    usable = [s for s in scores if s.expected is not None]
    glob = next((s for s in usable if not s.point.slice), None)
    candidates = [s for s in usable if s.point.slice and s.anomalous and s.direction == direction]
    if not candidates:
        return []
    devs = {s.point.slice: sign * (a - e) for s in candidates for a, e in [_units(s, per_unit)]}
    ref_dev, rel_ref, total, usual = 0.0, 0.0, 0.0, 0.0
    if glob is not None:
        a, e = _units(glob, per_unit)
        ref_dev, rel_ref = sign * (a - e), (sign * (a - e) / e if e > 0 else 0.0)
        total, usual = a, e
    # the count test, when the platform itself moved our way (a change to be proportional to)
    moved = glob is not None and glob.anomalous and glob.direction == direction and usual > 0
    per_event = size if moved and size is not None and size > 0 else None
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
        apart = per_event is None or disproportionate(
            a / per_event, total / per_event, e / usual, sign, len(candidates))
        power = share * math.log(lift) if lift > 1 and apart else 0.0
        out.append(SliceShare(s.point.slice, share, sign * rel, power, s))
    out.sort(key=lambda x: (-x.power, -x.share, len(x.slice), x.slice))
    return out


def disproportionate(
    events: float, total: float, usual_share: float, sign: float, candidates: int = 1
) -> bool:
    """Whether a slice's `events`, of the platform's `total` this window, are significantly
    beyond its `usual_share` of them on the `sign` side: given the total, a slice that moved in
    proportion holds Binomial(total, usual_share) events (the platform's own noise conditioned
    away); a one-sided exact test at `ALPHA`, Bonferroni over `candidates` slices. A slice
    that merely moved with the platform is not, however large its change in a small window.

    >>> disproportionate(0, 9, 0.27, -1.0)  # 0 of 9 complaints where 27% are usual: chance
    False
    >>> disproportionate(0, 40, 0.30, -1.0)  # 0 of 40 where 30% are usual: the cause
    True
    >>> disproportionate(30, 40, 0.30, -1.0)  # out of proportion, but the other way
    False
    """
    values = (events, total, usual_share)
    if not all(math.isfinite(v) for v in values) or total < 1 or not 0 < usual_share < 1:
        return False
    n = round(total)
    k = min(max(round(events), 0), n)
    if sign * (k - n * usual_share) <= 0:
        return False
    tail = _binomial_cdf(k, n, usual_share) if sign < 0 else \
        _binomial_cdf(n - k, n, 1.0 - usual_share)  # P(X >= k) = P(n - X <= n - k)
    return tail < ALPHA / max(candidates, 1)


_EXACT_MAX = 5000  # totals up to this: the exact tail; beyond, the normal approximation


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k), X ~ Binomial(n, p).

    >>> round(_binomial_cdf(0, 9, 0.27), 4), round(_binomial_cdf(4, 34, 0.3), 4)
    (0.0589, 0.0117)
    """
    if n > _EXACT_MAX:
        sd = math.sqrt(n * p * (1.0 - p))
        return NormalDist(n * p, sd).cdf(k + 0.5)
    log_p, log_q = math.log(p), math.log1p(-p)
    head = math.lgamma(n + 1)
    return min(1.0, sum(math.exp(head - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                                 + i * log_p + (n - i) * log_q) for i in range(k + 1)))


def event_size(scores: list[Score], value: str, counted_numerator: bool) -> float | None:
    """Summable units (`attribute`'s) per event, for the count test: 1 for a count, and for a
    ratio whose numerator counts events; a sum's or a mean's mean value per event (its
    denominator counts the events: compound Poisson, the spread of values left out); None
    when unknown (a ratio of sums: no test).

    >>> from stream_guard.types import MetricPoint
    >>> gmv = MetricPoint("gmv", (), 0, 1, 5000.0, 5000.0, 100.0)
    >>> event_size([Score(gmv, 1.0, 4000.0, True, "up")], "sum", False)
    50.0
    """
    if value == "ratio":
        return 1.0 if counted_numerator else None
    glob = next((s.point for s in scores if not s.point.slice), None)
    if glob is None or glob.denominator <= 0 or glob.numerator <= 0:
        return None
    return glob.numerator / glob.denominator


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
    """Hints for the top slices; a broad change (nothing concentrated) says so first.

    Shares never add up to more than 100%: a slice disjoint from those named before it claims
    what is left of the change; one that overlaps a named slice (category=fashion, then
    region=NA) claims none, and says which slice it overlaps: the same change seen along
    another dimension, most likely inside their intersection.
    """
    top = [s for s in shares if s.power > 0 and s.share >= MIN_SHARE][:limit]
    hints = []
    if global_fired and not top:
        hints.append(broad_hint("no slice stands out, all moved alike"))
    named: list[SliceKey] = []
    left = 1.0
    for s in top:
        over = next((n for n in named if overlaps(n, s.slice)), None)
        if over is None:
            share = min(s.share, left)
            left -= share
            hints.append(_level_hint(s, share))
        else:
            hints.append(_overlap_hint(s, over))
        named.append(s.slice)
    return hints


def broad_hint(why: str) -> RootCauseHint:
    """The verdict "platform-wide": no slice explains the change."""
    return RootCauseHint("slice", f"platform-wide: {why}",
                         {"slice": {}, "share": 1.0, "effect": "broad"})


def level_hint(key: SliceKey, share: float, relative_change: float) -> RootCauseHint:
    """A slice (or an element over several dimensions) that explains `share` of the change."""
    return RootCauseHint(
        "slice",
        f"{format_slice(key)} explains {share:.0%} of the change "
        f"({relative_change:+.0%} in the slice)",
        {"slice": slice_dict(key), "share": round(share, 4),
         "relative_change": round(relative_change, 4), "effect": "level"},
    )


def _level_hint(s: SliceShare, share: float) -> RootCauseHint:
    return level_hint(s.slice, share, s.relative_change)


def _overlap_hint(s: SliceShare, over: SliceKey) -> RootCauseHint:
    return RootCauseHint(
        "slice",
        f"{format_slice(s.slice)} moved too ({s.relative_change:+.0%} in the slice), "
        f"overlapping {format_slice(over)}: the same change, likely where they meet",
        {"slice": slice_dict(s.slice), "relative_change": round(s.relative_change, 4),
         "overlaps": slice_dict(over), "effect": "level"},
    )


MixTable = Mapping[SliceKey, tuple[float, float]]
"""(numerator, denominator) per single-dimension slice of a ratio metric."""

MIX_HALF_LIFE = 48  # windows: a day of 30-minute windows
_MIN_GAIN = 0.02  # a slice must gain 2 points of the volume to be named
_MIN_MIX_EFFECT = 0.03  # ... and move the platform's rate by 3% through the mix alone


def blend_mix(baseline: MixTable, current: MixTable, half_life: float = MIX_HALF_LIFE) -> MixTable:
    """The slow baseline `mix_shift` compares a window with: an exponentially weighted mean of
    each slice's (numerator, denominator) over the windows seen, `half_life` windows; the first
    window is its own baseline. Keeping this instead of the previous window (what the engine
    kept) lets a shift that lasts hours be seen in every window of it, not only the first.

    >>> base = {(("tier", "new"),): (1.0, 10.0), (("tier", "gold"),): (1.0, 90.0)}
    >>> shifted = {(("tier", "new"),): (3.0, 30.0), (("tier", "gold"),): (0.7, 70.0)}
    >>> blend_mix(base, shifted, half_life=1.0)[(("tier", "new"),)]
    (2.0, 20.0)
    """
    if not baseline:
        return dict(current)
    keep = 0.5 ** (1.0 / half_life)
    blended = {}
    for key in sorted(baseline.keys() | current.keys()):
        n0, d0 = baseline.get(key, (0.0, 0.0))
        n1, d1 = current.get(key, (0.0, 0.0))
        blended[key] = (keep * n0 + (1 - keep) * n1, keep * d0 + (1 - keep) * d1)
    return blended


def mix_shift(
    baseline: MixTable, current: MixTable, direction: Direction, limit: int = 2,
    rates: Literal["current", "baseline"] = "current",
) -> list[RootCauseHint]:
    """Slices whose share of the denominator grew toward a rate on the alert's side: "the mix
    shifted toward the slice", as opposed to "the rate rose inside it".

    `baseline` and `current` map the slices of one dimension to ``(numerator, denominator)``;
    the baseline is what the window is compared with (`blend_mix`). A slice's mix effect is
    its gain in share times how far its current rate is from the platform's, the part of the
    platform's rate change the shift alone makes (shift-share); it is named when it gains 2
    points of the volume and moves the platform's rate by 3% or more, the largest effect first.
    A rate change inside slices with an unchanged mix names nothing. With ``rates="current"``
    a slice's rate is this window's (Paasche); a slice whose rate rose *and* whose share grew
    for an unrelated reason (a region at its busy hours) is then named too. ``"baseline"``
    takes the rates of the baseline (Laspeyres), which a rate incident cannot move.
    """
    sign = 1.0 if direction == "up" else -1.0
    tot_base = sum(d for _, d in baseline.values())
    tot_cur = sum(d for _, d in current.values())
    if tot_base <= 0 or tot_cur <= 0:
        return []
    rate_base = sum(n for n, _ in baseline.values()) / tot_base
    rate_all = sum(n for n, _ in current.values()) / tot_cur
    effects = []
    for key, (num, den) in sorted(current.items()):
        if den <= 0:
            continue
        n0, d0 = baseline.get(key, (0.0, 0.0))
        grew = den / tot_cur - d0 / tot_base
        gap = num / den - rate_all if rates == "current" else (n0 / d0 if d0 > 0 else 0) - rate_base
        relative = sign * grew * gap / (rate_base or rate_all or 1.0)
        if grew > _MIN_GAIN and relative >= _MIN_MIX_EFFECT:
            effects.append((relative, key, grew))
    effects.sort(key=lambda e: (-e[0], e[1]))
    return [
        RootCauseHint(
            "slice", f"mix shifted toward {format_slice(key)} (+{grew:.0%} of the volume), "
                     f"which alone moves the rate {sign * relative:+.0%}",
            {"slice": slice_dict(key), "share_gain": round(grew, 4), "effect": "mix"},
        )
        for relative, key, grew in effects[:limit]
    ]
