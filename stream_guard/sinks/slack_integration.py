"""Slack as the notifier's integration (alert/notify.py `Integration`): a thread per episode.

- `open`: the parent message in the route's channel (the alert at a glance, with its buttons);
- `show`: chat.update of the parent, so it always shows the latest update and who handles it
  (an ack, a snooze: `handling`);
- `follow`: a reply in the thread for an escalation, new slices or the resolution; a reminder
  (`repeat_due`) is also broadcast to the channel, since a reminder hidden in a thread reminds
  no one.

Each method is one attempt of its Slack calls; the notifier retries (alert/notify.py `retry`).
"""

from __future__ import annotations

from collections.abc import Callable

from stream_guard.alert.nflog import LogEntry, Reason
from stream_guard.alert.notify import Thread
from stream_guard.sinks.slack import SlackSink
from stream_guard.sinks.slack_blocks import Handling, SlackMessage, render_parent, render_reply
from stream_guard.types import AlertRecord

__all__ = ["SlackIntegration"]


class SlackIntegration:
    """Renders alert updates with slack_blocks and sends them with a `SlackSink`."""

    def __init__(
        self, sink: SlackSink,
        handling: Callable[[str, int], Handling | None] | None = None,
    ) -> None:
        self.sink = sink
        # Who acknowledged or snoozed an episode (episode id, now) -> shown on its parent.
        self.handling = handling or (lambda episode_id, now_ms: None)

    def open(self, channel: str, alert: AlertRecord, now_ms: int) -> Thread:
        posted = self.sink.post(channel, self._parent(alert, now_ms))
        return Thread(posted.channel, posted.ts)

    def show(self, entry: LogEntry, alert: AlertRecord, now_ms: int) -> None:
        self.sink.update(entry.channel, entry.ts, self._parent(alert, now_ms))

    def follow(self, entry: LogEntry, alert: AlertRecord, reason: Reason, now_ms: int) -> None:
        reply = render_reply(
            alert,
            reason.value,
            previous_severity=entry.severity,
            previous_slices=entry.slices,
            first_sent_ms=entry.first_sent_ms,
            now_ms=now_ms,
        )
        self.sink.post(entry.channel, reply, thread_ts=entry.ts,
                       broadcast=reason is Reason.REPEAT_DUE)

    def _parent(self, alert: AlertRecord, now_ms: int) -> SlackMessage:
        return render_parent(alert, now_ms, self.handling(alert.episode_id, now_ms))
