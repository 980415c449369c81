"""Metric definitions (alert_rules/*.yaml): strict models and the loader.

One metric per file. Unknown keys are errors; every error names the file, the field path and the
reason. Cross-checks against the topics: sources name known topics, dimensions and filters name
fields of those topics, summed fields are numbers.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream_guard.config.durations import Duration
from stream_guard.config.errors import config_error
from stream_guard.config.topics import TopicSpec
from stream_guard.detect.registry import validate_params
from stream_guard.errors import ConfigError

__all__ = [
    "RESERVED_FILES",
    "AlertPolicy",
    "DetectorSpec",
    "MetricRule",
    "Source",
    "load_rule",
    "load_rules",
]

RESERVED_FILES = frozenset({"routes.yaml", "calendar.yaml"})
"""Files of alert_rules/ that are not metric definitions."""

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Source(_Strict):
    """Where a side of a metric comes from: a topic, an aggregate, optional equality filters."""

    topic: str
    aggregate: Literal["count", "sum"] = "count"
    field: str | None = None
    where: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _field_for_sum(self) -> Source:
        if self.aggregate == "sum" and not self.field:
            raise ValueError("aggregate 'sum' needs a `field`")
        return self


class DetectorSpec(_Strict):
    """``type`` names a detector of the registry; the other keys are its hyper-parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str

    @model_validator(mode="after")
    def _known_params(self) -> DetectorSpec:
        validate_params(self.type, self.params)
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Severity(_Strict):
    """Score thresholds: a point scoring at least `warning` is anomalous."""

    warning: float = Field(4.0, gt=0)
    critical: float = Field(7.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Severity:
        if self.critical < self.warning:
            raise ValueError("critical must be >= warning")
        return self

    def of(self, score: float) -> str | None:
        if score >= self.critical:
            return "critical"
        return "warning" if score >= self.warning else None


class AlertPolicy(_Strict):
    severity: Severity = Severity.model_validate({})
    route: str = "default"
    for_windows: int = Field(1, ge=1, alias="for", description="anomalous windows before firing")
    resolve_after: int = Field(3, ge=1, description="normal windows before resolving")
    repeat: Duration = timedelta(hours=4)
    cooldown: int = Field(2, ge=0, description="windows after a resolve before re-opening")
    max_slices: int = Field(5, ge=1, description="firing slices listed in one alert")


class ExplainPolicy(_Strict):
    interventions_lookback: Duration = timedelta(hours=2)
    max_hints: int = Field(5, ge=1)


class MetricRule(_Strict):
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(1, ge=1)
    description: str = ""
    owner: str | None = None
    runbook: str | None = None
    dashboard: str | None = None
    value: Literal["sum", "count", "mean", "ratio"]
    source: Source | None = None
    numerator: Source | None = None
    denominator: Source | None = None
    window: Duration
    lateness: Duration = timedelta(0)
    dimensions: list[str] = Field(default_factory=list)
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    direction: Literal["up", "down", "both"] = "both"
    detector: DetectorSpec
    alert: AlertPolicy = AlertPolicy.model_validate({})
    explain: ExplainPolicy = ExplainPolicy.model_validate({})
    max_series: int = Field(5000, ge=1, description="slices tracked at most (memory guard)")

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 1 or (86400 % v.total_seconds() and v.total_seconds() % 86400):
            raise ValueError("must be at least 1s and divide a day (or be whole days)")
        return v

    @model_validator(mode="after")
    def _shape(self) -> MetricRule:
        if self.value == "ratio":
            if self.numerator is None or self.denominator is None or self.source is not None:
                raise ValueError("value 'ratio' needs `numerator` and `denominator`, no `source`")
        elif self.source is None or self.numerator is not None or self.denominator is not None:
            raise ValueError(f"value {self.value!r} needs `source`, no numerator/denominator")
        if self.value in ("sum", "mean") and self.source and not self.source.field:
            raise ValueError(f"value {self.value!r} needs `source.field`")
        for a, b in self.pairs:
            if a == b:
                raise ValueError(f"pair ({a}, {b}) repeats a dimension")
        return self

    @property
    def sources(self) -> list[Source]:
        return [s for s in (self.source, self.numerator, self.denominator) if s is not None]

    @property
    def rule_id(self) -> str:
        return f"{self.metric}@{self.version}"

    def check_against(self, topics: dict[str, TopicSpec]) -> None:
        """Cross-checks with the topic schemas; raises ValueError with a field path."""
        for side in ("source", "numerator", "denominator"):
            src: Source | None = getattr(self, side)
            if src is None:
                continue
            if src.topic not in topics or topics[src.topic].json_schema is None:
                raise ValueError(f"{side}.topic: unknown event topic {src.topic!r}")
            props = topics[src.topic].json_schema.get("properties", {})  # type: ignore[union-attr]
            if src.field and props.get(src.field, {}).get("type") not in ("number", "integer"):
                raise ValueError(f"{side}.field: {src.field!r} is not a number in {src.topic}")
            for name in src.where:
                if name not in props:
                    raise ValueError(f"{side}.where.{name}: no such field in {src.topic}")
            for i, dim in enumerate([*self.dimensions, *(d for p in self.pairs for d in p)]):
                if dim not in props:
                    where = "dimensions" if i < len(self.dimensions) else "pairs"
                    raise ValueError(f"{where}: {dim!r} is not a field of topic {src.topic}")


def load_rule(path: Path, topics: dict[str, TopicSpec]) -> MetricRule:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): expected a mapping of rule fields")
    try:
        rule = MetricRule.model_validate(data)
        rule.check_against(topics)
    except ValidationError as exc:
        raise config_error(path, exc) from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return rule


def load_rules(
    directory: Path, topics: dict[str, TopicSpec], routes: set[str] | None = None
) -> list[MetricRule]:
    """Every metric of `directory`; refuses duplicates and (given `routes`) unknown routes."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of rule files")
    rules: dict[str, tuple[Path, MetricRule]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in RESERVED_FILES:
            continue
        rule = load_rule(path, topics)
        if rule.metric in rules:
            raise ConfigError(
                f"{path}: metric: {rule.metric!r} is already defined in {rules[rule.metric][0]}"
            )
        if routes is not None and rule.alert.route not in routes:
            raise ConfigError(
                f"{path}: alert.route: undefined route {rule.alert.route!r} "
                f"used in metric {rule.metric!r}"
            )
        rules[rule.metric] = (path, rule)
    if not rules:
        raise ConfigError(f"{directory}: no metric definitions (*.yaml)")
    return [rule for _, rule in rules.values()]

