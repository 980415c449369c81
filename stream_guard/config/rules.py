"""Metric definitions (alert_rules/*.yaml): strict models and the loader.

One metric per file. Unknown keys are errors; every error names the file, the field path and the
reason. Cross-checks against the topics: sources name known topics, dimensions and filters name
fields of those topics, summed fields are numbers. Values that would load but mislead are refused
too: a dimension or pair listed twice (its slices would count twice), durations outside the range
a field can mean (a negative lateness drops most events as late), non-finite numbers.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stream_guard.config.durations import Duration, RepeatInterval, between
from stream_guard.config.errors import Problems, config_error
from stream_guard.config.links import check_template
from stream_guard.config.topics import TopicSpec
from stream_guard.config.yamlfile import read_mapping
from stream_guard.detect.registry import validate_params
from stream_guard.errors import ConfigError

log = logging.getLogger(__name__)

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

_SECOND, _DAY, _WEEK = timedelta(seconds=1), timedelta(days=1), timedelta(days=7)


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
    """``type`` names a detector of the registry; the other keys are its hyper-parameters.

    ``auto`` (the default when a rule has no ``detector``) reads its model, horizons, guards
    and threshold from the metric's value type, window and history (detect/auto.py); its one
    parameter is ``sensitivity: low | medium | high``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str = "auto"

    @model_validator(mode="after")
    def _known_params(self) -> DetectorSpec:
        validate_params(self.type, self.params)
        for name, value in self.params.items():
            if not _finite(value):
                raise ValueError(f"{name}: must be a finite number, not {value!r}")
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Severity(_Strict):
    """Score thresholds: a point scoring at least `warning` is anomalous."""

    warning: float = Field(4.0, gt=0, allow_inf_nan=False)
    critical: float = Field(7.0, gt=0, allow_inf_nan=False)

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
    repeat: RepeatInterval | None = Field(
        None, description="deprecated and ignored: reminders follow the route's repeat_interval "
        "(routes.yaml), as in Alertmanager; kept so that older rule files still load")
    cooldown: int = Field(2, ge=0, description="windows after a resolve before re-opening")
    max_slices: int = Field(5, ge=1, description="firing slices listed in one alert")


class SellerPolicy(_Strict):
    """Which sellers carry a count or ratio metric's change (explain/sellers.py)."""

    field: str = Field("seller_id", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                       description="the event field naming the seller")
    top: int = Field(5, ge=1, le=20, description="sellers named at most: 'a few'")


class ExplainPolicy(_Strict):
    interventions_lookback: Annotated[Duration, between(timedelta(0), _WEEK)] = timedelta(hours=2)
    max_hints: int = Field(5, ge=1)
    # Sellers on by default, the leaf cube opt-in (session 8, measured with benchmarks/
    # replay.py, interleaved): both are now handed over once per window, bounded and saved
    # with the open windows (aggregate/cube.py, runtime/snapshot.py), so a restart no longer
    # changes hints. Sellers cost nothing measurable (a few counted topics); the cube on every
    # rule still runs replay at ~0.6x of cube-off (a new leaf per event or two on orders:
    # ~1 us each, and the per-window merge, fold and learning), under the ~0.9x it needs to be
    # on by default. docs/rca.md has the figures.
    localize: bool = Field(False, description="keep each window's leaf cube (every combination "
                           "of the dimensions) and name the elements that explain an episode "
                           "(explain/localize.py); needs 2 dimensions or more")
    sellers: SellerPolicy | None = Field(
        SellerPolicy.model_validate({}), description="count and ratio metrics: per-window "
        "seller heavy hitters "
        "and the sellers that carry the change, if a few do; null: off")


LinkTemplate = Annotated[str, AfterValidator(check_template)]
"""A runbook or dashboard URL, optionally with {metric}, {slice}... (config/links.py)."""


class MetricRule(_Strict):
    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: int = Field(1, ge=1)
    description: str = ""
    owner: str | None = None
    runbook: LinkTemplate | None = None
    dashboard: LinkTemplate | None = None
    unit: str | None = Field(None, pattern=r"^[A-Za-z%$€£][A-Za-z0-9%$€£/ _.-]{0,31}$",
                             description="the metric's unit in messages (USD, complaints...)")
    value: Literal["sum", "count", "mean", "ratio"]
    source: Source | None = None
    numerator: Source | None = None
    denominator: Source | None = None
    window: Annotated[Duration, between(_SECOND, _WEEK)]
    lateness: Annotated[Duration, between(timedelta(0), _DAY)] = timedelta(0)
    dimensions: list[str] = Field(default_factory=list)
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    direction: Literal["up", "down", "both"] = "both"
    detector: DetectorSpec = DetectorSpec()
    alert: AlertPolicy = AlertPolicy.model_validate({})
    explain: ExplainPolicy = ExplainPolicy.model_validate({})
    max_series: int = Field(5000, ge=1, description="slices tracked at most (memory guard)")

    @field_validator("window")
    @classmethod
    def _window(cls, v: timedelta) -> timedelta:
        # Windows tumble from the epoch: one that divides a day starts at midnight every day.
        ms, rest = divmod(v // timedelta(microseconds=1), 1000)
        day_ms = 86_400_000
        if rest or (day_ms % ms and ms % day_ms):
            raise ValueError("must divide a day (or be whole days)")
        return v

    @field_validator("dimensions")
    @classmethod
    def _distinct_dimensions(cls, v: list[str]) -> list[str]:
        seen: set[str] = set()
        for dim in v:
            if dim in seen:
                raise ValueError(f"{dim!r} is listed twice (its slices would count twice)")
            seen.add(dim)
        return v

    @field_validator("pairs")
    @classmethod
    def _distinct_pairs(cls, v: list[tuple[str, str]]) -> list[tuple[str, str]]:
        seen: dict[frozenset[str], int] = {}
        for i, (a, b) in enumerate(v):
            if a == b:
                raise ValueError(f"pair {i} ({a}, {b}) names one dimension twice")
            first = seen.setdefault(frozenset((a, b)), i)
            if first != i:
                raise ValueError(f"pair {i} ({a}, {b}) repeats pair {first} (in either order)")
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
        return self

    @field_validator("explain")
    @classmethod
    def _sellers_counted(cls, v: ExplainPolicy, info: ValidationInfo) -> ExplainPolicy:
        value = info.data.get("value")
        if "sellers" in v.model_fields_set and v.sellers is not None \
                and value not in ("count", "ratio", None):
            raise ValueError(f"sellers: only count and ratio metrics name sellers, not {value!r}")
        return v

    @property
    def seller_field(self) -> str | None:
        """The field whose values the metric counts per seller (count and ratio metrics)."""
        sellers = self.explain.sellers
        return sellers.field if sellers is not None and self.value in ("count", "ratio") else None

    @property
    def leaf_dimensions(self) -> tuple[str, ...]:
        """The dimensions of the window's leaf cube (none: no cube, hints from the slices)."""
        dims = tuple(self.dimensions)
        return dims if self.explain.localize and len(dims) >= 2 else ()

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
            self._check_seller_field(side, src.topic, props)
            for i, dim in enumerate([*self.dimensions, *(d for p in self.pairs for d in p)]):
                if dim not in props:
                    where = "dimensions" if i < len(self.dimensions) else "pairs"
                    raise ValueError(f"{where}: {dim!r} is not a field of topic {src.topic}")


    def _check_seller_field(self, side: str, topic: str, props: dict[str, Any]) -> None:
        """An explicit `explain.sellers.field` must be a field of the counted topic (the
        default, seller_id, simply counts under "(none)" where a topic has no such field)."""
        sellers = self.explain.sellers
        if sellers is None or "sellers" not in self.explain.model_fields_set \
                or side == "denominator" or sellers.field in props:
            return
        raise ValueError(f"explain.sellers.field: {sellers.field!r} is not a field of topic "
                         f"{topic}")


def _finite(value: Any) -> bool:
    """False if `value` is or holds (in lists) a NaN or an infinity."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def load_rule(path: Path, topics: dict[str, TopicSpec]) -> MetricRule:
    """The metric of one file; ConfigError naming the file, the field and the reason."""
    data = read_mapping(path, "a mapping of rule fields")
    try:
        rule = MetricRule.model_validate(data)
        rule.check_against(topics)
    except ValidationError as exc:
        raise config_error(path, exc) from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if rule.alert.repeat is not None:
        log.warning("%s: alert.repeat is ignored: reminders follow the route's repeat_interval "
                    "(routes.yaml)", path)
    return rule


def load_rules(
    directory: Path, topics: dict[str, TopicSpec], routes: set[str] | None = None
) -> list[MetricRule]:
    """Every metric of `directory`; refuses duplicates and (given `routes`) unknown routes.

    Goes on past a broken file: the ConfigErrors raised lists every problem of the directory.
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of rule files")
    problems = Problems()
    found: dict[str, tuple[Path, MetricRule]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        if path.name in RESERVED_FILES:
            continue
        rule = problems.attempt(partial(load_rule, path, topics))
        if rule is None:
            continue
        for clash in _clashes(path, rule, found, routes):
            problems.add(clash)
        found.setdefault(rule.metric, (path, rule))
    problems.raise_if_any()
    if not found:
        raise ConfigError(f"{directory}: no metric definitions (*.yaml)")
    return [rule for _, rule in found.values()]


def _clashes(
    path: Path, rule: MetricRule, found: dict[str, tuple[Path, MetricRule]], routes: set[str] | None
) -> list[str]:
    """What is wrong with `rule` next to the rules found before it: its metric, its route."""
    clashes = []
    if rule.metric in found:
        first = found[rule.metric][0]
        clashes.append(f"{path}: metric: {rule.metric!r} is already defined in {first}")
    if routes is not None and rule.alert.route not in routes:
        route, metric = rule.alert.route, rule.metric
        clashes.append(f"{path}: alert.route: undefined route {route!r} used in metric {metric!r}")
    return clashes

