"""The owner after a crash: a report merged before is dropped whole, and a model saved ahead of
the windows does not score a window twice (runtime/owner.py, "Crash safety")."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stream_guard.aggregate.source import SourceStage
from stream_guard.config.rules import MetricRule
from stream_guard.config.topics import TopicSpec
from stream_guard.engine import Engine
from stream_guard.ingest.codec import Codec
from stream_guard.ingest.kafka_batch import record_partition
from stream_guard.runtime.owner import Owner
from stream_guard.runtime.reports import Report
from stream_guard.runtime.snapshot import decode_model, decode_windows
from stream_guard.runtime.sources import SourcePool, expected_sources
from stream_guard.stats import EngineStats
from stream_guard.types import AlertRecord
from tests.parity import arrivals, comparable, parity_records, raw_value

IDLE_MS = 10_000
BATCH = 2_000


@pytest.fixture(scope="module")
def rules(rules: list[MetricRule]) -> list[MetricRule]:
    """The shipped rules with the leaf cube on (opt-in) besides sellers (on by default): a
    restored owner keeps the cubes of its open windows (runtime/snapshot.py), so its records,
    hints included, are the steady owner's."""
    return [r.model_copy(update={"explain": r.explain.model_copy(update={"localize": True})})
            for r in rules]


@pytest.fixture(scope="module")
def reports(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec]
) -> list[Report]:
    """Every report of the parity input's sources, batch after batch, with their offsets."""
    pool = SourcePool(lambda: SourceStage(rules, codec, EngineStats(), lambda _dl: None),
                      [r.metric for r in rules])
    out: list[Report] = []
    records = parity_records()
    arrival = arrivals(records)
    for start in range(0, len(records), BATCH):
        for i, rec in enumerate(records[start:start + BATCH], start):
            key, n = rec.get("key"), topics[rec["topic"]].partitions
            p = record_partition(key, n)
            pool.ingest(rec["topic"], p, i, raw_value(rec), arrival[i])
        out += pool.reports(start)
    return out


def _owner(rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec]) -> Owner:
    partitions = {name: spec.partitions for name, spec in topics.items()}
    return Owner(Engine(rules), expected_sources(rules, partitions), IDLE_MS)


def _adopting_all(rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec]) -> Owner:
    owner = _owner(rules, codec, topics)
    for rule in rules:
        owner.adopt(rule.metric, None, None, 0)
    return owner


def _run(owner: Owner, reports: list[Report]) -> list[AlertRecord]:
    return [a for r in reports for a in owner.on_report(r).alerts]


def test_a_report_merged_before_is_dropped_whole(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec], reports: list[Report],
) -> None:
    once, twice = _owner(rules, codec, topics), _owner(rules, codec, topics)
    for o in (once, twice):
        o.adopt("gmv", None, None, 0)
    gmv = [r for r in reports if r.metric == "gmv"][:40]
    _run(once, gmv)
    _run(twice, gmv[:30])
    _run(twice, gmv[10:])  # a source re-reading from an earlier commit, cut where it was cut

    m = once.index["gmv"]
    assert twice.mergers[m].state == once.mergers[m].state
    assert twice.engine.stats.reports == {("gmv", "merged"): 40, ("gmv", "duplicate"): 20}


def test_an_overlapping_report_is_merged_and_counted(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec], reports: list[Report],
) -> None:
    owner = _owner(rules, codec, topics)
    owner.adopt("gmv", None, None, 0)
    first = next(r for r in reports if r.metric == "gmv")
    owner.on_report(first)
    owner.on_report(dataclasses.replace(first, first_offset=first.next_offset - 1,
                                        next_offset=first.next_offset + 5))
    assert owner.engine.stats.reports[("gmv", "overlapping")] == 1


def test_a_model_saved_ahead_of_the_windows_scores_no_window_twice(
    rules: list[MetricRule], codec: Codec, topics: dict[str, TopicSpec], reports: list[Report],
) -> None:
    """Crash between saving the model and saving the windows, right after a report that closed
    windows: the restarted owner reads that report again and goes on as if nothing happened."""
    steady = _adopting_all(rules, codec, topics)
    alerts: list[AlertRecord] = []
    saved: dict[str, Any] = {}
    for k, r in enumerate(reports):
        closed = steady.on_report(r)
        if closed.alerts and not saved:  # the first report that pages (any metric may close)
            saved = {"k": k, "metric": closed.alerts[0]["metric"], "before": len(alerts),
                     "alerts": len(alerts) + len(closed.alerts)}
        alerts += closed.alerts
    assert saved, "the parity input pages"
    metric = saved["metric"]
    # The crash, on a second owner that reads the same reports up to report k (the owner is
    # deterministic: it pages as the steady one did so far): windows saved before report k,
    # the model after it. (Snapshotting the steady owner's windows before every report until
    # the first page costs ~40 s of CPU; this, one more pass.)
    crashed = _adopting_all(rules, codec, topics)
    assert [comparable(a) for a in _run(crashed, reports[:saved["k"]])] == [
        comparable(a) for a in alerts[:saved["before"]]]
    saved["windows"] = crashed.snapshot_windows(metric)
    crashed.on_report(reports[saved["k"]])
    saved["model"] = crashed.snapshot_model(metric)

    restarted = _owner(rules, codec, topics)
    restarted.adopt(metric, saved["windows"], saved["model"], 0)
    again = _run(restarted, [r for r in reports[saved["k"]:] if r.metric == metric])

    later = [a for a in alerts[saved["alerts"]:] if a["metric"] == metric]
    assert later, "the metric pages again later"
    assert [comparable(a) for a in again] == [comparable(a) for a in later]
    # the saved windows held windows the saved model had scored already: they were dropped
    scored_until = decode_model(saved["model"]).closed_until
    assert min(decode_windows(saved["windows"]).open) < scored_until
