"""Scrape-time counters: consistent copies while another thread increments."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, KeysView
from typing import Any

from stream_guard.observability.collector import CounterSpec, CounterTableCollector, snapshot


class _ResizedOnce:
    """A mapping whose first copy is interrupted, as by a concurrent insert."""

    def __init__(self, data: dict[str, int]) -> None:
        self.data = data
        self.copies = 0

    def keys(self) -> KeysView[str]:
        self.copies += 1
        if self.copies == 1:
            raise RuntimeError("dictionary changed size during iteration")
        return self.data.keys()

    def __getitem__(self, key: str) -> int:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_snapshot_retries_a_copy_interrupted_by_a_resize() -> None:
    flaky = _ResizedOnce({"orders": 3})
    assert snapshot(flaky) == {"orders": 3}  # type: ignore[arg-type]
    assert flaky.copies == 2


def test_collect_while_another_thread_adds_keys() -> None:
    """The engine inserts new label keys on the loop thread while the HTTP thread scrapes."""
    counter: Counter[str] = Counter()
    spec = CounterSpec("c", "x", "doc", ("k",))
    collector: CounterTableCollector[Any] = CounterTableCollector(
        [spec], lambda: [counter], lambda _f, c: c)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            counter[f"k{i % 1000}"] += 1
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        totals = [sum(s.value for f in collector.collect() for s in f.samples) for _ in range(30)]
    finally:
        stop.set()
        thread.join()
    assert totals == sorted(totals)  # counts only grow between scrapes


def test_tuple_keys_map_to_labels_in_order_and_missing_fields_export_empty() -> None:
    specs = [CounterSpec("alerts", "a", "doc", ("metric", "severity")),
             CounterSpec("episodes", "e", "doc", ("metric",))]
    source = {"alerts": Counter({("gmv", "critical"): 2})}
    collector: CounterTableCollector[dict[str, Counter[Any]]] = CounterTableCollector(
        specs, lambda: [source, source], lambda name, src: src.get(name))
    families = {f.name: [(s.labels, s.value) for s in f.samples] for f in collector.collect()}
    assert families == {"a": [({"metric": "gmv", "severity": "critical"}, 4.0)], "e": []}
