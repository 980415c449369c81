"""alert_rules/routes.yaml: strict pydantic models of the route tree and its loader.

The file has the root (default) route under `route` and, optionally, `inhibit_rules`
(alert/inhibit.py; the built-in "a critical inhibits the warnings of its metric and slice" comes
first). Unknown keys are errors,
durations are written like ``30m``, ``4h`` or ``1d12h``, and every problem is reported with the
file, the field path and the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING, InhibitRule
from stream_guard.alert.routing import (
    DEFAULT_GROUP_BY,
    DEFAULT_REPEAT_INTERVAL,
    Matcher,
    Route,
    RouteTree,
)
from stream_guard.config.durations import RepeatInterval
from stream_guard.config.errors import config_error
from stream_guard.config.yamlfile import read_mapping
from stream_guard.errors import ConfigError

__all__ = ["InhibitConfig", "MatchConfig", "RouteConfig", "RoutesFile", "load_routes"]

_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
# A Slack channel: "#name" (postMessage resolves it) or a channel id like C0123ABC.
_CHANNEL = r"^(#[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{2,})$"


def _as_set(value: Any) -> Any:
    """A matcher value may be one string or a list of strings."""
    return [value] if isinstance(value, str) else value


Values = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_as_set)]


class MatchConfig(BaseModel):
    """Matchers: the alert's metric, severity and slice labels must take one of the values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Values = []
    severity: Values = []
    slice: dict[str, Values] = {}

    def to_matcher(self) -> Matcher:
        return Matcher(
            metric=frozenset(self.metric),
            severity=frozenset(self.severity),
            slice={dim: frozenset(values) for dim, values in self.slice.items()},
        )


class RouteConfig(BaseModel):
    """One route; `channel`, `group_by` and `repeat_interval` default to the parent's."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=_NAME)
    match: MatchConfig = MatchConfig()
    channel: str | None = Field(default=None, pattern=_CHANNEL)
    continue_: bool = Field(default=False, alias="continue")
    group_by: list[str] | None = None
    repeat_interval: RepeatInterval | None = None
    routes: list[RouteConfig] = []

    @field_validator("group_by")
    @classmethod
    def _group_by_is_stable(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and "severity" in value:
            raise ValueError("severity changes during an episode; grouping by it splits threads")
        return value

    def walk(self, path: str) -> Iterator[tuple[str, RouteConfig]]:
        yield path, self
        for i, child in enumerate(self.routes):
            yield from child.walk(f"{path}.routes.{i}")


class InhibitConfig(BaseModel):
    """An inhibit rule: while an alert matching `source_match` fires, alerts matching
    `target_match` with the same values of the `equal` labels are not notified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    source_match: MatchConfig
    target_match: MatchConfig = MatchConfig()
    equal: list[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]] = []

    @field_validator("source_match")
    @classmethod
    def _source_is_narrow(cls, value: MatchConfig) -> MatchConfig:
        if value == MatchConfig():
            raise ValueError("an empty source matcher lets every firing alert mute others")
        return value

    def to_rule(self) -> InhibitRule:
        return InhibitRule(self.name, self.source_match.to_matcher(),
                           self.target_match.to_matcher(), tuple(self.equal))


class RoutesFile(BaseModel):
    """The whole file: the root route under `route`, inhibit rules under `inhibit_rules`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: RouteConfig
    inhibit_rules: list[InhibitConfig] = []


def load_routes(path: Path | str) -> RouteTree:
    """Read and validate a routes file; raise ConfigError naming the file, field and reason."""
    path = Path(path)
    raw = read_mapping(path, "a mapping with the root route under `route`")
    try:
        spec = RoutesFile.model_validate(raw)
    except ValidationError as exc:
        raise config_error(path, exc) from None
    problems = _check_tree(spec.route) + _check_inhibit(spec.inhibit_rules)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    rules = (CRITICAL_OVER_WARNING, *(rule.to_rule() for rule in spec.inhibit_rules))
    return RouteTree(_build(spec.route, parent=None), rules)


def _check_inhibit(rules: list[InhibitConfig]) -> list[str]:
    names = [CRITICAL_OVER_WARNING.name]
    problems = []
    for i, rule in enumerate(rules):
        if rule.name in names:
            problems.append(f"inhibit_rules.{i}.name: duplicate inhibit rule name {rule.name!r}")
        names.append(rule.name)
    return problems


def _check_tree(root: RouteConfig) -> list[str]:
    """What pydantic cannot see per node: root rules and unique names."""
    problems = []
    if root.channel is None:
        problems.append("route.channel: the root route needs a channel (the default receiver)")
    if root.match != MatchConfig():
        problems.append("route.match: the root route matches every alert; remove its matchers")
    if root.continue_:
        problems.append("route.continue: not allowed on the root route")
    seen: dict[str, str] = {}
    for where, node in root.walk("route"):
        if node.name in seen:
            problems.append(
                f"{where}.name: duplicate route name {node.name!r} (first at {seen[node.name]})"
            )
        seen.setdefault(node.name, where)
    return problems


def _build(node: RouteConfig, parent: Route | None) -> Route:
    """Resolve inheritance top-down, then build children with this node as their parent."""
    resolved = Route(
        name=node.name,
        channel=node.channel or (parent.channel if parent else ""),
        matcher=node.match.to_matcher(),
        continue_=node.continue_,
        group_by=tuple(node.group_by)
        if node.group_by is not None
        else (parent.group_by if parent else DEFAULT_GROUP_BY),
        repeat_interval=node.repeat_interval
        or (parent.repeat_interval if parent else DEFAULT_REPEAT_INTERVAL),
    )
    return replace(resolved, children=tuple(_build(child, resolved) for child in node.routes))
