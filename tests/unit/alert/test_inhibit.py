"""Inhibition (alert/inhibit.py) as timelines of firing and resolving alerts."""

from __future__ import annotations

from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING, SLICE, Inhibitor, InhibitRule
from stream_guard.alert.routing import AlertLabels, Matcher

GMV_OUTAGE = InhibitRule("gmv-outage", Matcher(metric=frozenset({"gmv"}),
                                               severity=frozenset({"critical"})),
                         Matcher(metric=frozenset({"complaint_rate"})))
BY_REGION = InhibitRule("by-region", Matcher(metric=frozenset({"gmv"})),
                        Matcher(metric=frozenset({"complaint_rate"})), ("region",))


def labels(metric: str, severity: str, **slice_: str) -> AlertLabels:
    return AlertLabels(metric, severity, slice_)


def test_a_critical_mutes_warnings_of_its_metric_and_slice_while_it_fires() -> None:
    inh = Inhibitor((CRITICAL_OVER_WARNING,), {})
    warning = labels("gmv", "warning", region="EU")
    assert inh.inhibiting("w", warning) == []
    inh.observe("c", labels("gmv", "critical", region="EU"), firing=True)
    assert inh.inhibiting("w", warning) == ["c"]
    assert inh.inhibiting("w", labels("gmv", "warning", region="EU", channel="web")) == []
    assert inh.inhibiting("w", labels("orders", "warning", region="EU")) == []
    assert inh.inhibiting("c", labels("gmv", "critical", region="EU")) == []  # not itself
    inh.observe("c", labels("gmv", "critical", region="EU"), firing=False)  # resolved
    assert inh.inhibiting("w", warning) == []


def test_an_escalated_episode_does_not_inhibit_itself() -> None:
    inh = Inhibitor((CRITICAL_OVER_WARNING,), {})
    inh.observe("e", labels("gmv", "warning"), firing=True)
    inh.observe("e", labels("gmv", "critical"), firing=True)
    assert inh.inhibiting("e", labels("gmv", "critical")) == []
    assert inh.firing == {"e": {"metric": "gmv", "severity": "critical", "slice": {}}}


def test_a_platform_wide_outage_mutes_another_metrics_slices() -> None:
    inh = Inhibitor((CRITICAL_OVER_WARNING, GMV_OUTAGE), {})
    complaints = labels("complaint_rate", "critical", category="toys")
    inh.observe("g", labels("gmv", "warning"), firing=True)
    assert inh.inhibiting("k", complaints) == []  # the source must be critical
    inh.observe("g", labels("gmv", "critical"), firing=True)
    assert inh.inhibiting("k", complaints) == ["g"]


def test_equal_labels_compare_values_and_missing_equals_missing() -> None:
    inh = Inhibitor((BY_REGION,), {})
    inh.observe("g", labels("gmv", "warning", region="EU"), firing=True)
    assert inh.inhibiting("k", labels("complaint_rate", "warning", region="EU")) == ["g"]
    assert inh.inhibiting("k", labels("complaint_rate", "warning", region="US")) == []
    assert inh.inhibiting("k", labels("complaint_rate", "warning")) == []
    inh.observe("p", labels("gmv", "warning"), firing=True)  # no region, as the target
    assert inh.inhibiting("k", labels("complaint_rate", "warning")) == ["p"]


def test_the_whole_slice_label() -> None:
    rule = InhibitRule("same-slice", Matcher(metric=frozenset({"gmv"})), Matcher(), (SLICE,))
    inh = Inhibitor((rule,), {})
    inh.observe("g", labels("gmv", "warning", region="EU"), firing=True)
    assert inh.inhibiting("o", labels("orders", "warning", region="EU")) == ["g"]
    assert inh.inhibiting("o", labels("orders", "warning", region="EU", tier="gold")) == []


def test_no_rules_mute_nothing() -> None:
    inh = Inhibitor((), {})
    inh.observe("c", labels("gmv", "critical"), firing=True)
    assert inh.inhibiting("w", labels("gmv", "warning")) == []
