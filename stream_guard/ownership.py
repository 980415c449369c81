"""Which metrics share an owner: one owner per partials partition, in replay as live.

The partials topic is keyed by metric, so the producer's partitioner (murmur2, as the Java
client, aiokafka and Faust use) puts every report and tick of a metric on one partition
(`home`), and the worker holding that partition owns the metric. An owner is one `Engine` over
the metrics of its partition (`owner_groups`), with its own shared state -- the governance
actions it was told of -- so that everything
it saves lands in that partition's changelog (Faust writes a table value to the changelog
partition of the message being processed) and a rebalance moves it whole.

Consequences, the same in both drivers:

- windows reach each owner's engine in `Engine.close_order` over that owner's metrics only
  (`close_windows`): an owner never waits for a metric it does not own;
- which metrics share one is decided by the partition count of topics/partials.yaml;
  changing it regroups them (and needs a new app id: saved state is not moved between
  partitions). No alert depends on the grouping: co-moving episodes of metrics on any owners
  are linked by the notifier (alert/correlate.py).

Replay (backtest/replay.py) groups the metrics with the same function and the partition count
of the same file, so replay and a live deployment of any number of workers give the same alerts.

>>> [home(m, 4) for m in ("gmv", "complaint_rate", "violation_rate")]
[0, 3, 3]
>>> home("gmv", 1)
0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from stream_guard.aggregate.merger import WindowMerger, close_in_order
from stream_guard.config.rules import MetricRule
from stream_guard.ingest.kafka_batch import partition_for

if TYPE_CHECKING:  # the engine imports River models: not needed to group metrics
    from stream_guard.engine import Engine
    from stream_guard.types import AlertRecord

__all__ = ["PARTIALS", "close_windows", "home", "owner_groups"]

PARTIALS = "partials"
"""The topic whose partitions decide the owners (topics/partials.yaml)."""


def home(metric: str, partitions: int) -> int:
    """The partials partition of `metric`: where its reports and ticks go, and its state."""
    return 0 if partitions == 1 else partition_for(metric.encode(), partitions)


def owner_groups(rules: list[MetricRule], partitions: int) -> dict[int, list[MetricRule]]:
    """Partials partition -> the rules of the metrics homed there, in rule order (partitions
    with no metric are left out).

    >>> from types import SimpleNamespace as R
    >>> {p: [r.metric for r in g] for p, g in owner_groups(
    ...     [R(metric=m) for m in ("gmv", "complaint_rate", "violation_rate")], 4).items()}
    {0: ['gmv'], 3: ['complaint_rate', 'violation_rate']}
    """
    groups: dict[int, list[MetricRule]] = {}
    for rule in rules:
        groups.setdefault(home(rule.metric, partitions), []).append(rule)
    return dict(sorted(groups.items()))


def close_windows(
    engine: Engine, mergers: Mapping[int, WindowMerger], final: bool = False
) -> tuple[list[AlertRecord], list[int]]:
    """Closes what is complete across one owner's `mergers` (its engine's metric index ->
    merger) and hands it to `engine` in close order; the alert records and the indexes of
    the metrics whose windows closed (in order, repeated per window). Counts what the mergers
    skipped or dropped in `engine.stats`."""
    records: list[AlertRecord] = []
    closed: list[int] = []
    for m, start, acc, cube in close_in_order(mergers, engine.close_order, final):
        records.extend(engine.on_window(m, start, acc, cube))
        closed.append(m)
    for m, merger in mergers.items():
        metric = engine.rules[m].metric
        engine.stats.skipped_windows[metric] = merger.state.skipped_windows
        engine.stats.isolated_windows[metric] = merger.state.isolated_windows
    return records, closed
