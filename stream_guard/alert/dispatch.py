"""The alert lifecycle after the engine, as Alertmanager runs it: inhibit → silence → notify.

The engine emits transitions (alert/episodes.py `Transition`) onto the alerts topic. For each
update read back, `Dispatcher.triage` decides whether it goes out:

1. **inhibit** (alert/inhibit.py): muted while another firing alert inhibits it;
2. **silence** (alert/silences.py): muted by an active silence of its metric and slice;
3. otherwise **notify** (alert/notify.py: route → dedup → retry → record).

A resolution of an episode that already has a thread goes out whatever mutes it, so no thread
stays firing forever. `remember` keeps the latest update of every episode with a thread (the
`threads` store: a Faust table live), which is what reminders and refreshes (acks, snoozes,
feedback, which analysts also give after the resolution) show, until the notification log
forgets the episode (`forget`); `due` lists the firing episodes whose reminder is due, passed
through the same stages.
Pure: `now` is an argument and the stores are plain mappings (dicts in tests and backtests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, MutableMapping
from typing import Any, Literal, NamedTuple

from stream_guard.alert.inhibit import Inhibitor
from stream_guard.alert.notify import labels_of
from stream_guard.alert.silences import ControlView
from stream_guard.types import AlertRecord

__all__ = ["Dispatcher", "Verdict"]

Action = Literal["notify", "inhibited", "silenced", "ignored"]


class Verdict(NamedTuple):
    """What to do with an update; `by` names the inhibiting episodes or the silences."""

    action: Action
    by: tuple[str, ...] = ()


class Dispatcher:
    """Inhibition and silences in front of the notifier, and the episodes it reminds of."""

    def __init__(
        self,
        inhibitor: Inhibitor,
        control: ControlView,
        threads: MutableMapping[str, dict[str, Any]],
    ) -> None:
        self.inhibitor = inhibitor
        self.control = control
        self.threads = threads  # episode id -> its latest update (the record), with a thread
        # (outcome, route, reason) like Notifier.stats: inhibited, silenced
        self.stats: Counter[tuple[str, str, str]] = Counter()

    def triage(self, alert: AlertRecord, now_ms: int, *, has_thread: bool) -> Verdict:
        """The stages before the notifier, for an update read from the alerts topic; the
        inhibitor learns what fires from it. `has_thread`: the episode was notified before."""
        if alert.status == "silenced":
            return Verdict("ignored")  # our own record of a silenced update
        labels = labels_of(alert)
        self.inhibitor.observe(alert.episode_id, labels, firing=alert.status == "firing")
        if has_thread and alert.status == "resolved":
            return Verdict("notify")
        verdict = self._muted(alert, now_ms)
        if verdict.action != "notify":
            self.stats[verdict.action, "", ""] += 1
        return verdict

    def _muted(self, alert: AlertRecord, now_ms: int) -> Verdict:
        if sources := self.inhibitor.inhibiting(alert.episode_id, labels_of(alert)):
            return Verdict("inhibited", tuple(sources))
        if silences := self.control.silencing(alert.metric, alert.slice, now_ms):
            return Verdict("silenced", tuple(s.id for s in silences))
        return Verdict("notify")

    def remember(self, alert: AlertRecord, record: dict[str, Any], *, has_thread: bool) -> None:
        """After notifying: keep the latest update of an episode with a thread."""
        if has_thread:
            self.threads[alert.episode_id] = record

    def forget(self, threaded: Callable[[str], bool]) -> int:
        """Drop the updates of episodes that no longer have a thread (`threaded`: the
        notification log still knows them); returns how many went."""
        gone = [episode_id for episode_id in list(self.threads) if not threaded(episode_id)]
        for episode_id in gone:
            del self.threads[episode_id]
        return len(gone)

    def latest(self, episode_id: str) -> AlertRecord | None:
        """The latest update of an episode with a thread (what its parent shows)."""
        record = self.threads.get(episode_id)
        return None if record is None else AlertRecord.parse(record)

    def due(
        self, now_ms: int, owned: Callable[[AlertRecord], bool], due: Collection[str],
    ) -> Iterator[AlertRecord]:
        """The firing episodes with a thread that `owned` accepts, among those with a reminder
        due (`due`: the notifier's `reminders_due`), and nothing muting them now."""
        for episode_id in [e for e in self.threads if e in due]:
            alert = self.latest(episode_id)
            if alert is None or alert.status != "firing" or not owned(alert):
                continue
            if self._muted(alert, now_ms).action == "notify":
                yield alert
