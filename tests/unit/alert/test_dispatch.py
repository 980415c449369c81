"""The stages before the notifier (alert/dispatch.py), as timelines of updates and ticks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stream_guard.alert.dispatch import Dispatcher, Verdict
from stream_guard.alert.inhibit import CRITICAL_OVER_WARNING, Inhibitor
from stream_guard.alert.silences import ControlView, Silence
from stream_guard.types import AlertRecord

EPISODE = (Path(__file__).parent / "fixtures" / "gmv_episode.jsonl").read_text().splitlines()
T0 = 1_772_633_700_000
HOUR = 3_600_000


def gmv(line: int, **overrides: Any) -> AlertRecord:
    return AlertRecord.parse({**json.loads(EPISODE[line]), **overrides})


def dispatcher() -> Dispatcher:
    return Dispatcher(Inhibitor((CRITICAL_OVER_WARNING,), {}), ControlView(), {})


def test_a_critical_inhibits_a_warning_of_the_same_slice_until_it_resolves() -> None:
    d = dispatcher()
    critical = gmv(0, episode_id="c", severity="critical")
    assert d.triage(critical, T0, has_thread=False) == Verdict("notify")
    warning = gmv(0, episode_id="w", fingerprint="ffffffffffffffff")
    assert d.triage(warning, T0, has_thread=False) == Verdict("inhibited", ("c",))
    d.triage(gmv(3, episode_id="c", severity="critical"), T0 + HOUR, has_thread=True)
    assert d.triage(warning, T0 + HOUR, has_thread=False) == Verdict("notify")
    assert d.stats["inhibited", "", ""] == 1


def test_a_silence_mutes_updates_but_never_the_resolution_of_an_open_thread() -> None:
    d = dispatcher()
    d.control.apply(Silence.create("gmv", {}, T0, T0 + HOUR, reason="deploy",
                                   author="U1").to_record())
    assert d.triage(gmv(0), T0, has_thread=False).action == "silenced"
    assert d.triage(gmv(3), T0 + 1, has_thread=True) == Verdict("notify")
    assert d.triage(gmv(3), T0 + 1, has_thread=False).action == "silenced"
    assert d.triage(gmv(0), T0 + HOUR, has_thread=False) == Verdict("notify")  # expired


def test_our_own_silenced_copies_are_ignored() -> None:
    assert dispatcher().triage(gmv(0, status="silenced"), T0, has_thread=False) == Verdict(
        "ignored")


def test_reminders_are_due_for_owned_firing_threads_that_nothing_mutes() -> None:
    d = dispatcher()
    d.remember(gmv(0), json.loads(EPISODE[0]), has_thread=True)
    d.remember(gmv(0, episode_id="other"), json.loads(EPISODE[0]), has_thread=False)
    due = {gmv(0).episode_id, "other"}  # what the notification log says is due at T0 + 1 h

    assert list(d.due(T0, lambda a: True, set())) == []
    assert [a.episode_id for a in d.due(T0 + HOUR, lambda a: True, due)] == [gmv(0).episode_id]
    assert list(d.due(T0 + HOUR, lambda a: False, due)) == []  # another partition's episode
    d.triage(gmv(0, episode_id="c", severity="critical"), T0, has_thread=False)
    assert list(d.due(T0 + HOUR, lambda a: True, due)) == []  # inhibited now: no reminder
    assert d.stats["inhibited", "", ""] == 0  # a muted reminder is not an inhibited update
    d.remember(gmv(3), json.loads(EPISODE[3]), has_thread=True)
    assert list(d.due(T0 + 9 * HOUR, lambda a: True, due)) == []  # resolved: never reminded
    assert d.latest(gmv(3).episode_id) == gmv(3)  # but a late verdict can still refresh it
    assert d.forget(lambda episode_id: False) == 1 and d.threads == {}
