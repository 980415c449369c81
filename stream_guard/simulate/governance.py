"""Governance actions: the interventions behind some incidents, and benign everyday ones.

An intervention incident gets a `rule_launch` whose scope is the incident's slice, published a
few minutes before the effect starts, so the explainer can blame it. Benign actions (threshold
changes, policy changes, takedowns) have no effect on traffic; they are kept 6 hours (13 for
onboarding) away from every incident so that they never look like a cause.

>>> from stream_guard.simulate.incidents import plan_incidents
>>> rng = np.random.default_rng(5)
>>> incidents, actions = attach_actions(plan_incidents(0, 7, rng), 0, 7, rng)
>>> [i.action_id is not None for i in incidents] == [i.cause == "intervention" for i in incidents]
True
>>> launch = next(a for a in actions if a.kind == "rule_launch")
>>> caused = next(i for i in incidents if i.action_id == launch.action_id)
>>> 0 < caused.start_ms - launch.ts_ms <= 10 * 60_000, dict(caused.slice) == launch.scope
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from stream_guard.simulate.catalog import CATEGORIES, REGIONS, TIERS
from stream_guard.simulate.incidents import Incident

__all__ = ["ActionKind", "GovernanceAction", "attach_actions"]

ActionKind = Literal["rule_launch", "threshold_change", "takedown", "policy_change"]

_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
BENIGN_PER_DAY = 3.0
# No benign action this long before an incident, during it, or this long after it: longer than
# any explainer lookback (up to 12 h for the 6-hour onboarding windows) and alert tail.
_QUIET_MS = {
    "": (6 * _HOUR_MS, 2 * _HOUR_MS),
    "bad_seller_onboarding_rate": (13 * _HOUR_MS, 6 * _HOUR_MS),
}
_OWNERS = ("trust-safety", "risk-ops", "catalog-quality")


@dataclass(frozen=True, slots=True)
class GovernanceAction:
    """One message of the governance_actions topic (before ids and formatting)."""

    ts_ms: int
    kind: ActionKind
    scope: Mapping[str, str]
    description: str
    action_id: str = ""
    owner: str = field(default="trust-safety")

    def value(self, event_id: str, ts: str | int) -> dict[str, Any]:
        """The JSON value of the record; `owner` is a harmless extra field."""
        return {
            "event_id": event_id,
            "ts": ts,
            "action_id": self.action_id,
            "kind": self.kind,
            "scope": dict(self.scope),
            "description": self.description,
            "owner": self.owner,
        }


def attach_actions(
    incidents: list[Incident], start_ms: int, days: int, rng: np.random.Generator
) -> tuple[list[Incident], list[GovernanceAction]]:
    """All actions of the run, numbered act-0001... in time order, and the incidents they cause."""
    tagged = [(_launch(i, rng), i.id) for i in incidents if i.cause == "intervention"]
    tagged += [(a, "") for a in _benign(incidents, start_ms, days, rng)]
    tagged.sort(key=lambda pair: pair[0].ts_ms)
    actions, cause_of = [], {}
    for n, (action, incident_id) in enumerate(tagged, start=1):
        actions.append(replace(action, action_id=f"act-{n:04d}"))
        cause_of[incident_id] = actions[-1].action_id
    return [replace(i, action_id=cause_of.get(i.id)) for i in incidents], actions


def _launch(incident: Incident, rng: np.random.Generator) -> GovernanceAction:
    """The rule launch published 2-10 minutes before its incident's effect begins."""
    lead_ms = int(rng.integers(2 * _MINUTE_MS, 10 * _MINUTE_MS))
    category = dict(incident.slice).get("category", "all")
    return GovernanceAction(
        ts_ms=incident.start_ms - lead_ms,
        kind="rule_launch",
        scope=dict(incident.slice),
        description=f"launch counterfeit detection rule v{int(rng.integers(2, 9))} for {category}",
    )


def _benign(
    incidents: list[Incident], start_ms: int, days: int, rng: np.random.Generator
) -> list[GovernanceAction]:
    """About BENIGN_PER_DAY actions a day, at times drawn among those far from every incident."""
    count = int(rng.poisson(BENIGN_PER_DAY * days))
    candidates = start_ms + rng.integers(0, max(1, days) * 24 * _HOUR_MS, size=20 * count)
    times = sorted(t for t in candidates.tolist() if not _near_incident(t, incidents))[:count]
    return [_benign_action(t, rng) for t in sorted(times)]


def _near_incident(ts_ms: int, incidents: list[Incident]) -> bool:
    """Inside an incident's quiet zone: what an explainer's lookback could link to it."""
    for i in incidents:
        before, after = _QUIET_MS.get(i.metric, _QUIET_MS[""])
        if i.start_ms - before <= ts_ms < i.end_ms + after:
            return True
    return False


def _benign_action(ts_ms: int, rng: np.random.Generator) -> GovernanceAction:
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    region = REGIONS[int(rng.integers(len(REGIONS)))]
    tier = TIERS[int(rng.integers(len(TIERS)))]
    options: list[tuple[ActionKind, dict[str, str], str]] = [
        ("threshold_change", {}, "raise the fraud score threshold for payouts"),
        ("threshold_change", {"category": category}, f"tune listing score cut-off for {category}"),
        ("policy_change", {}, "update the returns policy wording"),
        ("policy_change", {"region": region}, f"new seller document checklist in {region}"),
        ("takedown", {"category": category}, f"take down a batch of expired {category} listings"),
        ("takedown", {"seller_tier": tier}, f"suspend inactive {tier}-tier seller storefronts"),
        ("takedown", {}, "remove listings of sellers closed last quarter"),
    ]  # fmt: skip
    kind, scope, description = options[int(rng.integers(len(options)))]
    owner = _OWNERS[int(rng.integers(len(_OWNERS)))]
    return GovernanceAction(ts_ms, kind, scope, description, owner=owner)
