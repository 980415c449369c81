"""Inhibition, as Alertmanager runs it: a firing alert mutes others it makes redundant.

An inhibit rule names *source* matchers, *target* matchers and `equal` labels: while an alert
matching the source is firing, an update of an alert matching the target, with the same values
of every `equal` label, is not notified. `equal` takes `metric`, `severity`, a slice dimension,
or `slice` (the whole slice: same dimensions, same values); a label both alerts lack counts as
equal, as in Alertmanager. An alert never inhibits itself (one episode), and an inhibited alert
still inhibits others: only firing matters.

Built in, before the rules of routes.yaml (`inhibit_rules`): a critical alert inhibits the
warnings of the same metric and slice (`CRITICAL_OVER_WARNING`). A routes file adds others, e.g.
a platform-wide GMV outage inhibits the per-slice complaint-rate alerts it causes:

    inhibit_rules:
      - name: gmv-outage-mutes-complaints
        source_match: {metric: gmv, severity: critical}
        target_match: {metric: complaint_rate}

`Inhibitor` keeps the firing alerts in a mapping (a Faust table live, co-partitioned with the
alerts topic: a restarted notifier still knows what fires), updated by every record it sees.

>>> from stream_guard.alert.routing import AlertLabels
>>> inh = Inhibitor((CRITICAL_OVER_WARNING,), {})
>>> inh.observe("ep-1", AlertLabels("gmv", "critical", {"region": "EU"}), firing=True)
>>> inh.inhibiting("ep-2", AlertLabels("gmv", "warning", {"region": "EU"}))
['ep-1']
>>> inh.inhibiting("ep-3", AlertLabels("gmv", "warning", {"region": "US"}))
[]
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from stream_guard.alert.routing import AlertLabels, Matcher

__all__ = ["CRITICAL_OVER_WARNING", "SLICE", "InhibitRule", "Inhibitor"]

SLICE = "slice"
"""The `equal` label meaning the whole slice."""


@dataclass(frozen=True, slots=True)
class InhibitRule:
    name: str
    source: Matcher
    target: Matcher
    equal: tuple[str, ...] = ()

    def inhibits(self, source: AlertLabels, target: AlertLabels) -> bool:
        """Whether a firing `source` mutes `target` under this rule."""
        return (self.source.matches(source) and self.target.matches(target)
                and all(_value(source, label) == _value(target, label) for label in self.equal))


CRITICAL_OVER_WARNING = InhibitRule(
    "critical-over-warning", Matcher(severity=frozenset({"critical"})),
    Matcher(severity=frozenset({"warning"})), ("metric", SLICE))


def _value(labels: AlertLabels, label: str) -> Any:
    return dict(labels.slice) if label == SLICE else labels.get(label)


class Inhibitor:
    """The firing alerts (episode id -> labels) and the rules that let them mute others."""

    def __init__(
        self, rules: tuple[InhibitRule, ...], firing: MutableMapping[str, dict[str, Any]]
    ) -> None:
        self.rules = rules
        self.firing = firing  # episode id -> {"metric", "severity", "slice"}

    def observe(self, episode_id: str, labels: AlertLabels, *, firing: bool) -> None:
        """An update of an episode: it fires (with these labels) or it no longer does."""
        if firing:
            self.firing[episode_id] = {"metric": labels.metric, "severity": labels.severity,
                                       "slice": dict(labels.slice)}
        elif episode_id in self.firing:
            del self.firing[episode_id]

    def told(self, key: str, episode_id: str, value: Mapping[str, Any] | None) -> None:
        """Another notifier's episode (alerts with several partitions: runtime/comoving.py)
        fires with these labels (`observe`'s stored form), or no longer does (None). Kept
        under `key`, not the episode id: a worker holding both partitions keeps both entries,
        each written (and deleted) in its own partition's changelog."""
        if value is not None:
            labels = _labels(value)
            self.firing[key] = {"metric": labels.metric, "severity": labels.severity,
                                "slice": dict(labels.slice), "episode": episode_id}
        elif key in self.firing:
            del self.firing[key]

    def inhibiting(self, episode_id: str, labels: AlertLabels) -> list[str]:
        """The firing episodes that mute an update of `episode_id` (none: notify it)."""
        if not self.rules:
            return []
        sources = {value.get("episode", key) for key, value in self.firing.items()
                   if self._mutes(_labels(value), labels)}
        return sorted(sources - {episode_id})

    def _mutes(self, source: AlertLabels, target: AlertLabels) -> bool:
        return any(rule.inhibits(source, target) for rule in self.rules)


def _labels(value: Mapping[str, Any]) -> AlertLabels:
    return AlertLabels(value["metric"], value["severity"], value["slice"])
