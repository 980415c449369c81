"""Scores alert episodes against labelled incidents: precision, recall, delay, top hint.

An episode *detects* an incident of the same metric when its first window ends after the
incident starts and begins before the incident ends plus `tolerance_windows` windows (effects
linger in the windows that straddle the end). Precision counts episodes (one page = one
episode); recall counts incidents. Delay is measured from the incident's start to the end of the
episode's first window, in windows of the metric and in minutes (windows differ across metrics:
two 15-minute windows are quicker than two 6-hour ones). The top hint is right when the first
slice hint of the episode's first record names exactly the incident's slice.

The **top-1 RCA hit** (`Evaluation.rca`, per incident) reads the same first record as an
analyst would: for an incident that a few sellers carry (label `effect: sellers`), its
seller hint must name some of the incident's sellers and no other; for any other incident,
its first slice hint must name exactly the incident's slice (an element over several
dimensions, a mix shift's slice, or the platform for "no slice explains it").
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from stream_guard.types import AlertRecord, InterventionHint, SellerHint, SliceHint, epoch_ms

__all__ = ["EpisodeSummary", "Evaluation", "Incident", "MetricScore", "RcaResult", "evaluate",
           "load_labels", "rca_hit"]


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


@dataclass(frozen=True)
class Incident:
    id: str
    metric: str
    slice: dict[str, str]
    direction: str
    start_ms: int
    end_ms: int
    cause: str
    description: str = ""
    effect: str = "level"  # what moved (simulate/incidents.py Effect): level, mix, sellers
    sellers: tuple[str, ...] = ()


def load_labels(path: Path) -> list[Incident]:
    data = orjson.loads(path.read_bytes())
    return [
        Incident(i["id"], i["metric"], dict(i.get("slice") or {}), i.get("direction", ""),
                 _ms(i["start"]), _ms(i["end"]), i.get("cause", "external"),
                 i.get("description", ""), i.get("effect") or "level",
                 tuple(i.get("sellers") or ()))
        for i in data["incidents"]
    ]


@dataclass(frozen=True)
class EpisodeSummary:
    episode_id: str
    metric: str
    slice: dict[str, str]
    top_slice: dict[str, str]
    first_start_ms: int
    first_end_ms: int
    records: int
    intervention: bool
    top_effect: str = ""  # of the first slice hint ("" without one)
    sellers: tuple[str, ...] = ()  # named by the first seller hint


def summarise_episodes(
    alerts: Iterable[AlertRecord | Mapping[str, Any]],
) -> list[EpisodeSummary]:
    """One summary per episode, from its first record; records read as JSON are parsed first."""
    first: dict[str, AlertRecord] = {}
    count: dict[str, int] = {}
    for a in map(AlertRecord.parse, alerts):
        first.setdefault(a.episode_id, a)
        count[a.episode_id] = count.get(a.episode_id, 0) + 1
    out = []
    for eid, a in first.items():
        slice_hint = next((h for h in a.hints if isinstance(h, SliceHint)), None)
        top = slice_hint.slice if slice_hint else a.slice
        seller_hint = next((h for h in a.hints if isinstance(h, SellerHint)), None)
        out.append(EpisodeSummary(
            eid, a.metric, a.slice, top, epoch_ms(a.window_start), epoch_ms(a.window_end),
            count[eid], any(isinstance(h, InterventionHint) for h in a.hints),
            slice_hint.effect if slice_hint else "",
            tuple(s.seller for s in seller_hint.sellers) if seller_hint else (),
        ))
    return sorted(out, key=lambda e: (e.first_end_ms, e.metric))


@dataclass
class MetricScore:
    metric: str
    incidents: int = 0
    detected: int = 0
    episodes: int = 0
    true_episodes: int = 0
    delays: list[float] = field(default_factory=list)  # windows of the metric
    delays_minutes: list[float] = field(default_factory=list)
    top_hint_right: int = 0
    intervention_named: int = 0
    interventions: int = 0
    rca_hits: int = 0  # detected incidents whose top-1 root cause is right (`rca_hit`)

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else 1.0

    @property
    def precision(self) -> float:
        return self.true_episodes / self.episodes if self.episodes else 1.0

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def median_delay_minutes(self) -> float | None:
        return statistics.median(self.delays_minutes) if self.delays_minutes else None

    @property
    def top_hint_rate(self) -> float:
        return self.top_hint_right / self.detected if self.detected else 0.0

    @property
    def rca_top1_rate(self) -> float:
        return self.rca_hits / self.detected if self.detected else 0.0

    def as_row(self) -> dict[str, Any]:
        return {"metric": self.metric, "incidents": self.incidents, "detected": self.detected,
                "episodes": self.episodes, "precision": round(self.precision, 3),
                "recall": round(self.recall, 3), "median_delay_windows": self.median_delay,
                "median_delay_minutes": self.median_delay_minutes,
                "top_hint_rate": round(self.top_hint_rate, 3),
                "rca_top1": round(self.rca_top1_rate, 3),
                "interventions_named": f"{self.intervention_named}/{self.interventions}"}


@dataclass
class Evaluation:
    by_metric: dict[str, MetricScore]
    total: MetricScore
    matches: dict[str, list[str]]  # incident id -> episode ids
    false_episodes: list[EpisodeSummary]
    episodes: list[EpisodeSummary]
    rca: dict[str, RcaResult] = field(default_factory=dict)  # detected incident id ->


@dataclass(frozen=True)
class RcaResult:
    """What the first record of an incident's first episode named, and whether it is right."""

    named: str  # "category=fashion, region=EU (level)", "sellers s-1, s-2", "nothing"
    hit: bool

    def as_dict(self) -> dict[str, Any]:
        return {"named": self.named, "hit": self.hit}


def rca_hit(inc: Incident, first: EpisodeSummary) -> RcaResult:
    """The top-1 root cause of `first` against `inc` (see the module docstring)."""
    if inc.effect == "sellers":
        named = set(first.sellers)
        hit = bool(named) and named <= set(inc.sellers)
        return RcaResult(f"sellers {', '.join(first.sellers)}" if named else "no sellers", hit)
    if not first.top_effect:
        return RcaResult("nothing", False)
    where = ", ".join(f"{k}={v}" for k, v in sorted(first.top_slice.items())) or "platform-wide"
    return RcaResult(f"{where} ({first.top_effect})", first.top_slice == inc.slice)


def evaluate(
    alerts: Iterable[AlertRecord | Mapping[str, Any]],
    incidents: list[Incident],
    windows_ms: Mapping[str, int],
    tolerance_windows: int = 2,
) -> Evaluation:
    episodes = summarise_episodes(alerts)
    scores = {m: MetricScore(m) for m in sorted({*windows_ms, *(i.metric for i in incidents)})}
    total = MetricScore("all")
    matched_episodes: set[str] = set()
    matches: dict[str, list[str]] = {}
    rca: dict[str, RcaResult] = {}
    for inc in incidents:
        width = windows_ms.get(inc.metric, 1)
        hits = [e for e in episodes if e.metric == inc.metric
                and e.first_end_ms > inc.start_ms
                and e.first_start_ms < inc.end_ms + tolerance_windows * width]
        matches[inc.id] = [e.episode_id for e in hits]
        for s in (scores[inc.metric], total):
            s.incidents += 1
            s.interventions += inc.cause == "intervention"
        if not hits:
            continue
        matched_episodes.update(e.episode_id for e in hits)
        first = hits[0]
        rca[inc.id] = rca_hit(inc, first)
        delay = max(0.0, (first.first_end_ms - inc.start_ms) / width)
        for s in (scores[inc.metric], total):
            s.detected += 1
            s.delays.append(round(delay, 2))
            s.delays_minutes.append(round(delay * width / 60_000, 1))
            s.top_hint_right += first.top_slice == inc.slice
            s.intervention_named += inc.cause == "intervention" and first.intervention
            s.rca_hits += rca[inc.id].hit
    for e in episodes:
        for s in (scores.setdefault(e.metric, MetricScore(e.metric)), total):
            s.episodes += 1
            s.true_episodes += e.episode_id in matched_episodes
    false = [e for e in episodes if e.episode_id not in matched_episodes]
    return Evaluation(scores, total, matches, false, episodes, rca)
