"""The route tree: which Slack channels an alert goes to, in the spirit of Alertmanager's routes.

Each node has matchers on the alert's labels (metric, severity and slice dimensions), a channel,
`group_by`, `repeat_interval` and child routes; unset settings are inherited from the parent. An
alert enters the tree at the route its metric rule names (the root by default) and descends: the
first matching child wins unless it says `continue`, and a node none of whose children match is
itself the destination. The entry node's own matchers are not checked: naming a route in a rule is
an explicit choice, exactly as every alert matches Alertmanager's root.

>>> leaf = Route("page", channel="#page", matcher=Matcher(severity=frozenset({"critical"})))
>>> root = Route("default", channel="#alerts", children=(leaf,))
>>> tree = RouteTree(root)
>>> [r.name for r in tree.match(AlertLabels("gmv", "critical", {}))]
['page']
>>> [r.name for r in tree.match(AlertLabels("gmv", "warning", {}))]
['default']
>>> group_key(root, AlertLabels("gmv", "warning", {"region": "EU"}), "ep-1")
'metric=gmv|ep-1'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # alert/inhibit.py builds on this module's labels and matchers
    from stream_guard.alert.inhibit import InhibitRule

__all__ = ["AlertLabels", "Matcher", "Route", "RouteTree", "group_key"]

DEFAULT_GROUP_BY = ("metric",)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)  # Alertmanager's default


@dataclass(frozen=True, slots=True)
class AlertLabels:
    """What routing looks at: the metric, the current severity and the alert's slice."""

    metric: str
    severity: str
    slice: Mapping[str, str]

    def get(self, label: str) -> str | None:
        """A label by name: `metric`, `severity`, or a slice dimension."""
        if label == "metric":
            return self.metric
        if label == "severity":
            return self.severity
        return self.slice.get(label)


@dataclass(frozen=True, slots=True)
class Matcher:
    """Each given label must take one of the listed values; an empty matcher matches everything."""

    metric: frozenset[str] = frozenset()
    severity: frozenset[str] = frozenset()
    slice: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def matches(self, labels: AlertLabels) -> bool:
        if self.metric and labels.metric not in self.metric:
            return False
        if self.severity and labels.severity not in self.severity:
            return False
        return all(labels.slice.get(dim) in values for dim, values in self.slice.items())


@dataclass(frozen=True, slots=True)
class Route:
    """One node of the tree, with inherited settings already resolved."""

    name: str
    channel: str
    matcher: Matcher = field(default_factory=Matcher)
    continue_: bool = False
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
    children: tuple[Route, ...] = ()

    def walk(self) -> Iterator[Route]:
        """This node and every descendant, depth first, in file order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def match(self, labels: AlertLabels, *, check_self: bool = True) -> list[Route]:
        """The destinations below (or at) this node, as Alertmanager's `Route.Match`."""
        if check_self and not self.matcher.matches(labels):
            return []
        found: list[Route] = []
        for child in self.children:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]


class RouteTree:
    """The whole tree, indexed by route name; the root is the default route. It carries the
    file's inhibit rules (alert/inhibit.py: the built-in one first)."""

    def __init__(self, root: Route, inhibit_rules: tuple[InhibitRule, ...] | None = None) -> None:
        self.root = root
        if inhibit_rules is None:
            from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING

            inhibit_rules = (CRITICAL_OVER_WARNING,)
        self.inhibit_rules = inhibit_rules
        self._by_name: dict[str, Route] = {}
        for route in root.walk():
            if route.name in self._by_name:
                raise ValueError(f"duplicate route name {route.name!r}")
            self._by_name[route.name] = route

    def names(self) -> set[str]:
        """Every route name, so the rule loader can refuse a metric naming an undefined route."""
        return set(self._by_name)

    def get(self, name: str) -> Route:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def walk(self) -> Iterator[Route]:
        return self.root.walk()

    def match(self, labels: AlertLabels, entry: str | None = None) -> list[Route]:
        """Destinations of an alert entering at route `entry` (the root when None).

        Raises KeyError for an unknown entry; the caller decides on a fallback.
        """
        start = self.root if entry is None else self._by_name[entry]
        return start.match(labels, check_self=False)


def group_key(route: Route, labels: AlertLabels, episode_id: str) -> str:
    """The notification group of an alert on a route: its `group_by` labels and its episode.

    The episode is always part of the key: the engine already grouped slices into the episode,
    and every episode gets its own Slack thread. `group_by` makes the key readable and lets a
    route split further; a label the alert lacks is left out.
    """
    values = ((name, labels.get(name)) for name in route.group_by)
    parts = [f"{name}={value}" for name, value in values if value is not None]
    return ",".join(parts) + "|" + episode_id
