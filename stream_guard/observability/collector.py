"""Scrape-time export of counters that plain code already keeps.

The engine counts every event in `collections.Counter`s (`EngineStats`); incrementing a
prometheus-client `Counter` as well would add a lock, a label lookup and a value update to a
hot path that must handle 100k+ events/s per worker. Instead, `CounterTableCollector` reads the
plain counters when Prometheus scrapes (every 15 s or so), sums them over every tracked source
and turns them into counter families. A scrape costs O(label sets), never O(events).

The collector runs on the HTTP server's threads while the engine mutates its counters on the
event loop: `snapshot` copies a counter in one C-level call under the GIL and retries in the
rare case a concurrent insert still interrupts it.

>>> from collections import Counter
>>> table = (CounterSpec("events", "stream_guard_events", "Valid events.", ("topic",)),)
>>> source = {"events": Counter({"orders": 3})}
>>> collector = CounterTableCollector(table, lambda: [source], lambda name, src: src[name])
>>> [(s.name, s.labels, s.value) for f in collector.collect() for s in f.samples]
[('stream_guard_events_total', {'topic': 'orders'}, 3.0)]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CounterSpec", "CounterTableCollector", "fold", "snapshot"]

S = TypeVar("S")
K = TypeVar("K", bound=Hashable)

SNAPSHOT_ATTEMPTS = 5
"""Copies tried before giving up on a counter that keeps changing size under us; one is enough
in practice (the copy does not release the GIL), the rest are for a GC pause at the wrong time."""


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One exported counter: the source field, the family name (without `_total`), its labels.

    A key of the source counter is a label value when there is one label, a tuple of label
    values otherwise (the shape `EngineStats` uses).
    """

    field: str
    name: str
    documentation: str
    labels: tuple[str, ...]

    def label_values(self, key: Hashable) -> list[str]:
        values = key if isinstance(key, tuple) else (key,)
        return [str(v) for v in values]


def snapshot(counter: Mapping[K, int]) -> dict[K, int]:
    """A consistent copy of a counter another thread may be incrementing."""
    for _ in range(SNAPSHOT_ATTEMPTS - 1):
        try:
            return dict(counter)
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return dict(counter)


def fold(total: Counter[K], counter: Mapping[K, int]) -> None:
    """Adds `counter` into `total` (both keyed alike)."""
    for key, value in snapshot(counter).items():
        total[key] += value


class CounterTableCollector(Collector, Generic[S]):
    """Exports the counters named by `table` from every source `sources()` returns, summed.

    `field_of(name, source)` returns the source's counter for a spec's `field`, or None when
    that source does not keep it (a newer table than the code feeding it).
    """

    def __init__(
        self,
        table: Iterable[CounterSpec],
        sources: Callable[[], Iterable[S]],
        field_of: Callable[[str, S], Mapping[Hashable, int] | None],
    ) -> None:
        self.table = tuple(table)
        self._sources = sources
        self._field_of = field_of

    def describe(self) -> Iterator[Metric]:
        """The families without reading any source (the registry checks names with it)."""
        for spec in self.table:
            yield CounterMetricFamily(spec.name, spec.documentation, labels=spec.labels)

    def collect(self) -> Iterator[Metric]:
        sources = list(self._sources())
        for spec in self.table:
            total: Counter[Hashable] = Counter()
            for source in sources:
                counter = self._field_of(spec.field, source)
                if counter is not None:
                    fold(total, counter)
            family = CounterMetricFamily(spec.name, spec.documentation, labels=spec.labels)
            for key, value in sorted(total.items(), key=lambda kv: repr(kv[0])):
                family.add_metric(spec.label_values(key), float(value))
            yield family
