"""Co-moving episodes across owners (alert/correlate.py): links from the set of records, never
from the order they arrived in; what parents show advances only when told."""

from __future__ import annotations

import random
from typing import Any

import pytest

from stream_guard.alert.correlate import MAX_LINKS, RETENTION_MS, Correlator
from stream_guard.errors import InvalidEvent
from stream_guard.types import AlertRecord

DAY = "2026-03-04T"


def record(metric: str, episode: str, start: str, end: str, *, sequence: int = 0,
           status: str = "firing", slice_: dict[str, str] | None = None,
           fired: list[dict[str, str]] | None = None, direction: str = "up",
           started: str | None = None) -> AlertRecord:
    """A record of `episode` for the window [start, end) (HH:MM), the episode `started` then
    (at `start` unless said)."""
    where = slice_ or {}
    return AlertRecord.parse({
        "schema": 1, "fingerprint": f"fp-{episode}", "episode_id": episode,
        "sequence": sequence, "status": status,
        "reason": "resolved" if status == "resolved" else "new", "metric": metric,
        "description": "", "rule_version": f"{metric}@1", "owner": None, "runbook": None,
        "dashboard": None, "route": "default", "slice": where, "direction": direction,
        "window_start": f"{DAY}{start}:00Z", "window_end": f"{DAY}{end}:00Z", "value": 1.0,
        "expected": 0.5, "score": 5.0, "severity": "warning",
        "started_at": f"{DAY}{started or start}:00Z", "peak_score": 5.0, "hints": [],
        "firing_slices": [{"slice": s, "value": 1.0, "expected": 0.5, "score": 5.0}
                          for s in (fired if fired is not None else [where])]})


def links(corr: Correlator, *episodes: str) -> dict[str, list[str]]:
    return {e: corr.linked_to(e) for e in episodes}


def observe_all(records: list[AlertRecord], store: dict[str, Any] | None = None) -> Correlator:
    corr = Correlator({} if store is None else store)
    for r in records:
        corr.observe(r)
    return corr


EU, US = {"region": "EU"}, {"region": "US"}
# Four owners' episodes; per episode, its records in order.
EPISODES = {
    "gmv": [record("gmv", "gmv", "14:00", "14:15", slice_=EU),
            record("gmv", "gmv", "14:00", "14:45", sequence=1, slice_=EU),
            record("gmv", "gmv", "14:00", "15:45", sequence=2, status="resolved", slice_=EU)],
    # starts after gmv's first window: linked only once gmv's second record is known
    "cr": [record("complaint_rate", "cr", "14:20", "14:25", slice_=EU),
           record("complaint_rate", "cr", "14:20", "14:50", sequence=1, status="resolved",
                  slice_=EU)],
    "vr-us": [record("violation_rate", "vr-us", "14:05", "14:30", slice_=US)],  # other slice
    "bad": [record("bad_seller_onboarding_rate", "bad", "14:10", "14:40")],  # the platform
    "gmv-us": [record("gmv", "gmv-us", "14:05", "14:30", slice_=US)],
}


def interleave(by_episode: dict[str, list[AlertRecord]], rng: random.Random) -> list[AlertRecord]:
    """The episodes' records merged in a random order that keeps each episode's order (as the
    alerts topic does: one key, one partition). benchmarks/comoving.py uses it too."""
    queues = {name: list(records) for name, records in by_episode.items()}
    out = []
    while queues:
        name = rng.choice(sorted(queues))
        out.append(queues[name].pop(0))
        if not queues[name]:
            del queues[name]
    return out


def interleaving(rng: random.Random) -> list[AlertRecord]:
    return interleave(EPISODES, rng)


def test_links_are_the_same_in_every_arrival_order() -> None:
    expected = {
        "gmv": ["bad", "cr"],  # by start: 14:10, 14:20
        "cr": ["gmv", "bad"],
        "vr-us": ["gmv-us", "bad"],  # gmv-us is another metric; the platform overlaps any slice
        "bad": ["gmv", "gmv-us", "vr-us", "cr"],  # 14:05 twice: by metric
        "gmv-us": ["vr-us", "bad"],
    }
    rng = random.Random(14)
    for _ in range(200):
        assert links(observe_all(interleaving(rng)), *EPISODES) == expected


def test_one_metric_never_links_to_itself_and_disjoint_slices_or_times_do_not_link() -> None:
    corr = observe_all([
        record("gmv", "a", "14:00", "14:15", slice_=EU),
        record("gmv", "b", "14:00", "14:15"),  # the same metric, the platform
        record("complaint_rate", "c", "14:00", "14:15", slice_=US),  # another slice
        record("violation_rate", "d", "14:15", "14:30", slice_=EU),  # starts as `a` ends
    ])
    assert links(corr, "a", "b", "c", "d") == {"a": [], "b": ["c"], "c": ["b"], "d": []}


def test_episodes_of_one_window_link_by_the_window_not_by_started_at() -> None:
    """The engine's `started_at` is the end of the first window (when it opened the episode):
    a one-window episode spans that window."""
    corr = observe_all([record("gmv", "a", "14:00", "14:15", started="14:15"),
                        record("complaint_rate", "b", "14:10", "14:15", started="14:15")])
    assert links(corr, "a", "b") == {"a": ["b"], "b": ["a"]}


def test_a_firing_slice_inside_another_dimension_overlaps() -> None:
    """An episode of the platform whose firing slices say where it moved links by those,
    not by its own slice (the platform, which would overlap everything)."""
    corr = observe_all([
        record("gmv", "a", "14:00", "14:15", fired=[{"category": "toys"}]),
        record("complaint_rate", "b", "14:00", "14:15", slice_={"category": "books"}),
        record("violation_rate", "c", "14:00", "14:15", slice_={"category": "toys"}),
    ])
    assert links(corr, "a") == {"a": ["c"]}


def test_a_resolution_does_not_stretch_the_span() -> None:
    """The resolved record's window came after quiet windows: not a time the metric moved."""
    corr = observe_all([
        record("gmv", "a", "14:00", "14:15"),
        record("gmv", "a", "14:00", "15:00", sequence=1, status="resolved"),
        record("complaint_rate", "b", "14:30", "14:35"),
    ])
    assert links(corr, "a", "b") == {"a": [], "b": []}


def test_a_silenced_copy_and_a_replayed_record_change_nothing() -> None:
    first = record("gmv", "a", "14:00", "14:15")
    corr = observe_all([first, record("complaint_rate", "b", "14:00", "14:15")])
    store_before = dict(corr.store)
    copy = AlertRecord.parse({**first.to_dict(), "status": "silenced", "window_end":
                              f"{DAY}18:00:00Z", "silenced_by": ["s-1"]})
    assert corr.observe(copy) == [] and corr.observe(first) == []
    assert corr.store == store_before


def test_observe_says_which_episodes_gained_a_link() -> None:
    corr = Correlator({})
    assert corr.observe(record("gmv", "a", "14:00", "14:15")) == []
    assert corr.observe(record("complaint_rate", "b", "14:20", "14:25")) == []
    assert corr.observe(record("gmv", "a", "14:00", "14:30", sequence=1)) == ["a", "b"]
    assert corr.observe(record("gmv", "a", "14:00", "14:45", sequence=2)) == []


def test_parents_stay_stale_until_slack_took_the_update() -> None:
    """A notifier killed between the link and its chat.update finds the parent stale again."""
    store: dict[str, Any] = {}
    observe_all([record("gmv", "a", "14:00", "14:15"),
                 record("complaint_rate", "b", "14:00", "14:15")], store)
    restarted = Correlator(store)  # the table as a restarted worker restores it
    assert restarted.stale(["a", "b", "unknown"]) == ["a", "b"]
    restarted.shown("a")
    assert restarted.stale(["a", "b"]) == ["b"]
    restarted.observe(record("violation_rate", "c", "14:00", "14:15"))
    assert restarted.stale(["a", "b", "c"]) == ["a", "b", "c"]  # a new peer: stale again


def test_peers_are_described_by_their_first_record() -> None:
    corr = observe_all([
        record("gmv", "a", "14:00", "14:15", slice_=EU, direction="down"),
        record("complaint_rate", "b", "14:05", "14:10", slice_=EU),
    ])
    (peer,) = corr.peers("b")
    assert (peer.episode_id, peer.metric, peer.direction, dict(peer.slice)) == (
        "a", "gmv", "down", EU)
    assert peer.started_ms == 1_772_632_800_000  # 14:00


def test_links_are_capped_keeping_the_earliest_whatever_the_order() -> None:
    many = [record(f"m{i:03d}", f"e{i:03d}", f"14:{i % 50:02d}", "15:00")
            for i in range(MAX_LINKS + 10)]
    hub = record("gmv", "hub", "14:00", "15:00")
    forward = observe_all([hub, *many])
    backward = observe_all([*reversed(many), hub])
    assert len(forward.peers("hub")) == MAX_LINKS
    assert forward.linked_to("hub") == backward.linked_to("hub")
    assert forward.linked_to("hub")[:3] == ["e000", "e050", "e001"]  # by start, then metric


@pytest.mark.parametrize("lag_ms, kept", [(RETENTION_MS, True), (RETENTION_MS + 1, False)])
def test_forget_drops_episodes_long_past_the_newest_window(lag_ms: int, kept: bool) -> None:
    corr = observe_all([record("gmv", "old", "14:00", "14:15"),
                        record("complaint_rate", "b", "14:00", "14:15")])
    newest = record("violation_rate", "new", "14:00", "14:15")
    corr.observe(newest)
    entry = corr.store["new"]
    corr.store["new"] = {**entry, "end_ms": entry["end_ms"] + lag_ms}
    assert corr.forget() == (0 if kept else 2)
    assert ("old" in corr.store) is kept
    assert corr.linked_to("new") == ["b", "old"]  # peers keep naming what was forgotten


def test_notifiers_of_two_partitions_exchanging_statuses_link_as_one() -> None:
    """Alerts with two partitions: each notifier observes its own episodes' records and learns
    the other's statuses, late, out of order and twice; the links of its own episodes are
    those one notifier reading everything makes."""
    home = {name: i % 2 for i, name in enumerate(sorted(EPISODES))}
    expected = links(observe_all(interleaving(random.Random(0))), *EPISODES)
    rng = random.Random(41)
    for _ in range(100):
        notifiers = [Correlator({}), Correlator({})]
        in_flight: list[tuple[int, dict[str, Any]]] = []
        for r in interleaving(rng):
            mine = home[r.episode_id]
            notifiers[mine].observe(r)
            status = notifiers[mine].status(r.episode_id)
            assert status is not None
            in_flight += [(1 - mine, status)] * rng.choice([1, 2])
            rng.shuffle(in_flight)
            while in_flight and rng.random() < 0.5:
                to, delivered = in_flight.pop()
                notifiers[to].learn(delivered)
        for to, delivered in in_flight:
            notifiers[to].learn(delivered)
        for name, p in home.items():
            assert notifiers[p].is_local(name) and not notifiers[1 - p].is_local(name)
            assert notifiers[p].linked_to(name) == expected[name], name


def test_an_unreadable_status_is_refused() -> None:
    with pytest.raises(InvalidEvent):
        Correlator({}).learn({"peer": {"episode_id": "x"}})


def test_only_local_episodes_are_stale() -> None:
    """A peer learned from another partition's notifier has its parents there."""
    corr = Correlator({})
    other = Correlator({})
    other.observe(record("gmv", "a", "14:00", "14:15"))
    status = other.status("a")
    assert status is not None
    corr.learn(status)
    corr.observe(record("complaint_rate", "b", "14:00", "14:15"))
    assert corr.stale(["a", "b"]) == ["b"]
