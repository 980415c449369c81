"""Slack as the notifier's integration (alert/notify.py `Integration`): a thread per episode.

- `open`: the parent message in the route's channel (the alert at a glance, with its buttons),
  then, for a record with a series, a chart of it uploaded into the new thread (`Charts`:
  rendered in a thread of its own within a time budget; slow, busy or failing charts are
  skipped and counted in `charts`, never retried, never an error of `open`, which the notifier
  would retry: a second parent);
- `show`: chat.update of the parent, so it always shows the latest update, who handles it
  (an ack, a snooze: `handling`) and the other metrics' episodes at the same time (`peers`:
  alert/correlate.py; every parent is rendered with them, so a link found later reaches the
  parent with one chat.update);
- `follow`: a reply in the thread for an escalation, new slices or the resolution; a reminder
  (`repeat_due`) is also broadcast to the channel, since a reminder hidden in a thread reminds
  no one.

Each method is one attempt of its Slack calls; the notifier retries (alert/notify.py `retry`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence

from stream_guard.alert.correlate import Peer
from stream_guard.alert.nflog import LogEntry, Reason
from stream_guard.alert.notify import Thread
from stream_guard.errors import SinkError
from stream_guard.sinks.chart import chart_title, render_chart
from stream_guard.sinks.slack import SlackSink
from stream_guard.sinks.slack_blocks import Handling, SlackMessage, render_parent, render_reply
from stream_guard.types import AlertRecord

__all__ = ["CHART_BUDGET_S", "Charts", "SlackIntegration"]

log = logging.getLogger(__name__)

CHART_BUDGET_S = 3.0
"""How long `open` waits for a chart after the parent is posted; a slower one is skipped."""


class Charts:
    """Renders a record's chart in a daemon thread within `budget_s`; one render at a time (a
    render still running past its budget makes the next chart skipped as `busy`, so a stuck
    renderer holds one thread, never more). Outcomes are counted in `counts`."""

    def __init__(self, render: Callable[[AlertRecord], bytes | None] = render_chart,
                 budget_s: float = CHART_BUDGET_S) -> None:
        self.render = render
        self.budget_s = budget_s
        self.counts: Counter[str] = Counter()
        self._running: threading.Thread | None = None

    def png(self, alert: AlertRecord) -> bytes | None:
        """The chart's bytes; None when there is none, or it was busy, slow or failed."""
        if self._running is not None and self._running.is_alive():
            self.counts["skipped_busy"] += 1
            return None
        box: list[bytes | Exception | None] = []
        self._running = threading.Thread(target=self._render, args=(alert, box),
                                         name="stream-guard-chart", daemon=True)
        self._running.start()
        self._running.join(self.budget_s)
        if not box:
            self.counts["skipped_slow"] += 1
            log.warning("chart for %s: not ready in %.1f s, skipped", alert.episode_id,
                        self.budget_s)
            return None
        if isinstance(box[0], Exception):
            self.counts["failed_render"] += 1
            log.warning("chart for %s: %s: %s", alert.episode_id, type(box[0]).__name__, box[0])
            return None
        return box[0]

    def _render(self, alert: AlertRecord, box: list[bytes | Exception | None]) -> None:
        try:
            box.append(self.render(alert))
        except Exception as exc:  # reported by `png`; a chart never fails an alert
            box.append(exc)


class SlackIntegration:
    """Renders alert updates with slack_blocks and sends them with a `SlackSink`."""

    def __init__(
        self, sink: SlackSink,
        handling: Callable[[str, int], Handling | None] | None = None,
        charts: Charts | None = None,
        peers: Callable[[str], Sequence[Peer]] | None = None,
    ) -> None:
        self.sink = sink
        # Who acknowledged or snoozed an episode (episode id, now) -> shown on its parent.
        self.handling = handling or (lambda episode_id, now_ms: None)
        self.charts = charts or Charts()
        # The co-moving episodes of other metrics (episode id) -> shown on its parent.
        self.peers = peers or (lambda episode_id: ())

    def open(self, channel: str, alert: AlertRecord, now_ms: int) -> Thread:
        posted = self.sink.post(channel, self._parent(alert, now_ms))
        if alert.series:
            self._upload_chart(Thread(posted.channel, posted.ts), alert)
        return Thread(posted.channel, posted.ts)

    def _upload_chart(self, thread: Thread, alert: AlertRecord) -> None:
        """One attempt; a failure is counted and logged, never raised (the parent is out)."""
        png = self.charts.png(alert)
        if png is None:
            return
        try:
            self.sink.upload(thread.channel, thread.ts, png, f"{alert.metric}.png",
                             chart_title(alert))
        except SinkError as err:
            self.charts.counts["failed_upload"] += 1
            log.warning("chart for %s: upload failed: %s", alert.episode_id, err)
            return
        self.charts.counts["uploaded"] += 1

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
        return render_parent(alert, now_ms, self.handling(alert.episode_id, now_ms),
                             self.peers(alert.episode_id))
