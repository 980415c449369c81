"""The notification log and the pure decision of why to notify."""

from __future__ import annotations

import pytest

from stream_guard.alert.nflog import (
    LogEntry,
    NotificationLog,
    NotifyState,
    Reason,
    WriteBehindStore,
    reminder_due,
    why_notify,
)

HOUR = 3_600_000
EU = frozenset({"region=EU"})


def state(
    seq: int, status: str = "firing", severity: str = "warning", slices: frozenset[str] = EU
) -> NotifyState:
    return NotifyState("ep-1", status, seq, severity, slices)


SENT = LogEntry.sent(state(0), channel="C1", ts="1.0", now_ms=0)


@pytest.mark.parametrize(
    ("entry", "update", "reason"),
    [
        (None, state(0), Reason.FIRST),
        (None, state(5), Reason.FIRST),  # joined mid-episode: still a first notification
        (None, state(1, "resolved"), Reason.NONE),  # nothing was said, nothing to resolve
        (None, state(0, "silenced"), Reason.NONE),
        (SENT, state(0), Reason.NONE),  # a redelivered record: same sequence
        (SENT, state(1), Reason.NONE),  # nothing new: an update never reminds (reminder_due)
        (SENT, state(1, severity="critical"), Reason.ESCALATED),
        (SENT, state(1, severity="info"), Reason.NONE),  # severity going down is no news
        (SENT, state(1, slices=EU | {"region=US"}), Reason.ESCALATED),
        (SENT, state(1, slices=frozenset()), Reason.NONE),  # fewer slices: no news
        (SENT, state(1, "resolved"), Reason.RESOLVED),
        (SENT, state(1, "silenced"), Reason.NONE),
        (SENT.advanced(state(3, "resolved"), 5), state(4), Reason.NONE),
        (SENT.advanced(state(3, "resolved"), 5), state(4, "resolved"), Reason.NONE),
    ],
)
def test_why_notify(entry: LogEntry | None, update: NotifyState, reason: Reason) -> None:
    assert why_notify(entry, update) is reason


@pytest.mark.parametrize(
    ("entry", "now_ms", "due"),
    [
        (SENT, HOUR - 1, False),
        (SENT, HOUR, True),
        (SENT.advanced(state(1), HOUR), 2 * HOUR - 1, False),  # counted from the last notice
        (SENT.advanced(state(1), HOUR), 2 * HOUR, True),
        (SENT.advanced(state(3, "resolved"), 5), HOUR * 9, False),  # a closed thread: never
    ],
)
def test_reminder_due(entry: LogEntry, now_ms: int, due: bool) -> None:
    assert reminder_due(entry, now_ms, repeat_interval_ms=HOUR) is due


def test_another_episode_in_the_same_group_starts_over() -> None:
    other = NotifyState("ep-2", "firing", 0, "warning", EU)
    assert why_notify(SENT, other) is Reason.FIRST


def test_advanced_keeps_thread_and_accumulates() -> None:
    later = SENT.advanced(state(2, severity="critical", slices=frozenset({"region=US"})), 7)
    assert (later.channel, later.ts, later.first_sent_ms, later.last_sent_ms) == ("C1", "1.0", 0, 7)
    assert later.slices == ("region=EU", "region=US")
    assert later.severity == "critical"
    assert later.advanced(state(3, severity="warning"), 8).severity == "critical"


def test_log_round_trips_through_plain_json_values() -> None:
    store: dict[str, dict[str, object]] = {}
    log = NotificationLog(store)  # type: ignore[arg-type]
    assert log.get("route", "g") is None
    log.record("route", "g", SENT)
    assert list(store) == ["route|g"]
    assert store["route|g"]["slices"] == ["region=EU"]  # JSON-able: lists, not tuples
    assert log.get("route", "g") == SENT


def test_gc_forgets_old_entries() -> None:
    store: dict[str, dict[str, object]] = {}
    log = NotificationLog(store, retention_ms=HOUR)  # type: ignore[arg-type]
    log.record("r", "old", SENT)
    log.record("r", "new", SENT.advanced(state(1), HOUR))
    assert log.gc(now_ms=HOUR + 1) == 1
    assert list(store) == ["r|new"]


def test_write_behind_store_buffers_until_flush() -> None:
    table: dict[str, dict[str, object]] = {"a": {"v": 1}, "b": {"v": 2}}
    staged = WriteBehindStore(table)  # type: ignore[arg-type]
    staged["c"] = {"v": 3}
    del staged["a"]
    assert staged.get("a") is None and staged["b"] == {"v": 2} and staged["c"] == {"v": 3}
    assert sorted(staged) == ["b", "c"] and len(staged) == 2
    assert table == {"a": {"v": 1}, "b": {"v": 2}}  # untouched until flushed
    with pytest.raises(KeyError):
        del staged["nope"]
    assert staged.flush() == 2
    assert table == {"b": {"v": 2}, "c": {"v": 3}}
    assert staged.flush() == 0


def test_notification_log_over_a_write_behind_store() -> None:
    table: dict[str, dict[str, object]] = {}
    log = NotificationLog(WriteBehindStore(table))  # type: ignore[arg-type]
    log.record("r", "g", SENT)
    assert log.get("r", "g") == SENT and table == {}
