"""Slack Block Kit messages for alerts: foreign text inert, every message within Slack's limits.

Everything that comes from events or rules (slice values, seller ids, categories, descriptions,
hint text) goes through `escape_mrkdwn` (see `slack_text`), so it can never become a mention, a
channel link or a link. The only mentions are owners configured as Slack ids (and who pressed a
button, by the id Slack signed), and the only links are runbook/dashboard URLs that look like
plain http(s) URLs (rule templates filled in with percent-encoded values: `templated_link`).
Lists are cut to what fits, saying what was left out ("… 12 more slices");
`slack_limits.fit_blocks` then guarantees Slack's limits and `"verbatim": true` on every message.

>>> human_duration(5_400_000)
'1 hour 30 minutes'
>>> compact(85_100.0), compact(-44_800.0), compact(1_250_000.0), compact(0.0512)
('85.1k', '−44.8k', '1.25M', '0.0512')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stream_guard.alert.correlate import Peer
from stream_guard.config.links import check_template, expand
from stream_guard.sinks.slack_limits import (
    MAX_FALLBACK,
    MAX_FIELD_TEXT,
    MAX_SECTION_TEXT,
    fit_blocks,
)
from stream_guard.sinks.slack_text import MAX_URL, clip, escape_mrkdwn, fit_items, link, mention
from stream_guard.types import AlertRecord, SliceHint, epoch_ms, format_slice, slice_key

__all__ = [
    "ACK_ACTION_ID",
    "FALSE_ALARM_ACTION_ID",
    "REAL_ACTION_ID",
    "SNOOZE_ACTION_ID",
    "SNOOZE_ACTION_IDS",
    "Handling",
    "SlackMessage",
    "button_value",
    "compact",
    "escape_mrkdwn",
    "human_duration",
    "link",
    "mention",
    "relative_time",
    "render_parent",
    "render_reply",
]

ACK_ACTION_ID = "stream_guard.ack"
SNOOZE_ACTION_ID = "stream_guard.snooze_1h"  # the id older messages carry: kept for 1 hour
SNOOZE_ACTION_IDS = {
    SNOOZE_ACTION_ID: 1, "stream_guard.snooze_4h": 4, "stream_guard.snooze_24h": 24}
"""Snooze buttons: action id -> hours."""
REAL_ACTION_ID = "stream_guard.feedback_real"
FALSE_ALARM_ACTION_ID = "stream_guard.feedback_false_alarm"
MAX_HINTS = 5  # an analyst reads the top few; the rest is noise in a notification
MAX_SLICES = 5
MAX_BUTTON_VALUE = 2000  # Slack's limit for a button's value
MAX_NAME = 200  # a metric name or a severity in a title

_SEVERITY_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}
_HINT_LABEL = {
    "slice": "Slice",
    "metric": "Co-moving metric",
    "intervention": "Intervention",
    "external": "External factor",
    "sellers": "Sellers",
    "ratio": "Ratio",
}


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What chat.postMessage / chat.update take: a plain-text fallback and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Handling:
    """Who is on an episode, shown on its parent: an acknowledgement, an active snooze, and
    an analyst's verdict (`verdict`: "real" or "false_alarm").

    `acked_by`, `snoozed_by` and `judged_by` are Slack user ids from signed button presses
    (they become mentions only if they look like ids, like rule owners).
    """

    acked_by: str | None = None
    acked_at_ms: int | None = None
    snoozed_by: str | None = None
    snoozed_until_ms: int | None = None
    judged_by: str | None = None
    verdict: str | None = None


def human_duration(ms: int) -> str:
    """The two largest units of a duration, e.g. '2 days 3 hours'."""
    minutes = max(ms, 0) // 60_000
    if minutes == 0:
        return "less than a minute"
    parts = [(minutes // 1440, "day"), (minutes // 60 % 24, "hour"), (minutes % 60, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " ".join(words[:2])


def relative_time(then_ms: int, now_ms: int) -> str:
    """'5 minutes ago' for a moment before `now_ms` (which is injected, never read here)."""
    if now_ms - then_ms < 60_000:
        return "just now"
    largest_unit = human_duration(now_ms - then_ms).split(" ")[:2]
    return " ".join(largest_unit) + " ago"


def _num(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.3g}"


_SCALES = ((1e9, "B"), (1e6, "M"), (1e3, "k"))


def compact(x: float) -> str:
    """A number as an analyst reads it in a sentence: 85.1k, 1.25M, 0.0512 (minus as −)."""
    sign = "−" if x < 0 else ""
    for scale, suffix in _SCALES:
        if abs(x) >= scale * 0.9995:  # 999,999 is 1M, never 1e+03k
            return f"{sign}{abs(x) / scale:.3g}{suffix}"
    return sign + _num(abs(x))


def _percent(actual: float, expected: float) -> str:
    if not expected:
        return ""
    change = (actual - expected) / abs(expected) * 100
    text = f"{change:+.0f}" if abs(change) >= 10 else f"{change:+.1f}"
    return f" ({text.replace('-', '−')}%)"


def _signed(x: float) -> str:
    return compact(x) if x < 0 else "+" + compact(x)


def _so_far_line(alert: AlertRecord) -> str | None:
    """'since 14:15 (45 minutes): 85.1k vs 40.3k expected (+111%), +44.8k USD, +59.7k USD/h':
    the episode's windows so far, the numbers its score was computed from."""
    so_far = alert.so_far
    if so_far is None:
        return None
    since = f"{so_far.since:%H:%M}" if so_far.since.date() == alert.window_end.date() else (
        f"{so_far.since:%Y-%m-%d %H:%M}")
    head = f"since {since} ({human_duration(int(so_far.duration_s * 1000))})"
    if so_far.aggregate == "mean":
        head += f", mean of {so_far.windows} windows"
    unit = f" {escape_mrkdwn(alert.unit, 40)}" if alert.unit else ""
    text = (f"{head}: {compact(so_far.actual)} vs {compact(so_far.expected)} expected"
            f"{_percent(so_far.actual, so_far.expected)}, {_signed(so_far.gap)}{unit}")
    if so_far.gap_per_hour is not None:
        text += f", {_signed(so_far.gap_per_hour)}{unit}/h"
    return text


def _slice_text(labels: Mapping[str, str]) -> str:
    return escape_mrkdwn(format_slice(slice_key(labels)))


def _score(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _value_line(alert: AlertRecord) -> str:
    so_far = _so_far_line(alert)
    if so_far is not None:
        return so_far
    if alert.value is None:
        return "no data in this window"
    if alert.expected is None:
        return f"{_num(alert.value)} (no baseline yet)"
    change = ""
    if alert.expected:
        change = f" ({(alert.value - alert.expected) / abs(alert.expected) * 100:+.1f}%)"
    return f"{_num(alert.value)} vs expected {_num(alert.expected)}{change}"


def _title(alert: AlertRecord) -> str:
    metric, where = escape_mrkdwn(alert.metric, MAX_NAME), _slice_text(alert.slice)
    if alert.status == "resolved":
        return f":white_check_mark: *RESOLVED* · *{metric}* was {alert.direction} · {where}"
    icon = _SEVERITY_ICON.get(alert.severity, ":large_blue_circle:")
    severity = escape_mrkdwn(alert.severity.upper(), 20)
    return f"{icon} *{severity}* · *{metric}* is {alert.direction} · {where}"


def _lasted(alert: AlertRecord) -> str:
    """How long the episode has lasted, up to the end of this update's window."""
    return human_duration(epoch_ms(alert.window_end) - epoch_ms(alert.started_at))


def _window(alert: AlertRecord, now_ms: int) -> str:
    start, end = alert.window_start, alert.window_end
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    text = f"{start:%Y-%m-%d %H:%M} – {end:{end_format}} UTC"
    return f"{text}\n{relative_time(epoch_ms(end), now_ms)}"


def _hints(alert: AlertRecord) -> dict[str, Any] | None:
    """The top hints, as many as fit in a section, and how many more there are."""
    lines = []
    for hint in alert.hints[:MAX_HINTS]:
        label = _HINT_LABEL.get(hint.kind, "Hint")
        share = ""
        if isinstance(hint, SliceHint) and hint.share is not None and (
            f"{hint.share:.0%}" not in hint.summary
        ):
            share = f" ({hint.share:.0%} of the change)"
        lines.append(f"• *{label}*: {escape_mrkdwn(hint.summary)}{share}")
    return _list_section("*Root-cause hints*\n", lines, len(alert.hints), "hint")


def _peers(alert: AlertRecord, peers: Sequence[Peer]) -> dict[str, Any] | None:
    """Other metrics' episodes at the same time in overlapping slices (alert/correlate.py), by
    start: each named by what its first record fixed, so the text does not depend on when the
    link was found."""
    lines = [_peer_line(alert, peer) for peer in peers[:MAX_HINTS]]
    return _list_section("*Co-moving metrics*\n", lines, len(peers), "metric")


def _peer_line(alert: AlertRecord, peer: Peer) -> str:
    started = datetime.fromtimestamp(peer.started_ms / 1000, UTC)
    when = f"{started:%H:%M}" if started.date() == alert.started_at.date() else (
        f"{started:%Y-%m-%d %H:%M}")
    metric = escape_mrkdwn(peer.metric, MAX_NAME)
    direction = escape_mrkdwn(peer.direction, 20)
    return (f"• *{metric}* {direction} in {_slice_text(peer.slice)} since {when} UTC"
            f" (episode {escape_mrkdwn(peer.episode_id, 100)})")


def _firing_slices(alert: AlertRecord) -> dict[str, Any] | None:
    """The highest-scoring slices, as many as fit in a section, and how many more there are."""
    top = sorted(alert.firing_slices, key=lambda s: -s.score)[:MAX_SLICES]
    lines = [f"• {_slice_text(s.slice)}: {_num(s.value)} (score {s.score:.1f})" for s in top]
    return _list_section("*Firing slices*\n", lines, len(alert.firing_slices), "slice")


def _list_section(head: str, lines: Sequence[str], total: int, noun: str) -> dict[str, Any] | None:
    if not lines:
        return None
    return _section(fit_items(head, lines, total=total, noun=noun, limit=MAX_SECTION_TEXT))


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _message(fallback: str, blocks: Sequence[dict[str, Any] | None]) -> SlackMessage:
    """The message as sent: blocks within Slack's limits, the fallback text bounded."""
    kept = [block for block in blocks if block is not None]
    return SlackMessage(text=clip(fallback, MAX_FALLBACK), blocks=fit_blocks(kept))


def _fields(alert: AlertRecord, now_ms: int) -> dict[str, Any]:
    pairs = [
        ("So far" if alert.so_far else "Value", _value_line(alert)),
        ("Score", f"{_score(alert.score)} (peak {alert.peak_score:.1f})"),
        ("Window", _window(alert, now_ms)),
        ("Severity", escape_mrkdwn(alert.severity, 20)),
    ]
    if alert.owner:
        pairs.append(("Owner", _owners(alert.owner)))
    if alert.status == "resolved":
        pairs.append(("Duration", _lasted(alert)))
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in pairs]
    return {"type": "section", "fields": fields}


def _owners(owner: str) -> str:
    """Each configured owner id as a mention (the only mentions an alert makes)."""
    owners = [mention(one) for one in re.split(r"[\s,]+", owner) if one]
    limit = MAX_FIELD_TEXT - 20  # room for the field's name
    return fit_items("", owners, total=len(owners), noun="owner", limit=limit, sep=" ")


_LINK = re.compile(r"https?://[^\s<>|\"]+")


def templated_link(template: str | None, label: str, alert: AlertRecord) -> str | None:
    """A rule's runbook or dashboard link filled in for this alert (config/links.py: values
    percent-encoded), `&` escaped as Slack asks inside a link; a template that fails the
    rule-load checks (a record not written by a loaded rule) is shown as inert text."""
    if not template:
        return None
    try:
        url = expand(check_template(template), alert.metric, alert.slice, alert.episode_id)
    except ValueError:
        return f"{label}: {escape_mrkdwn(template)}"
    if len(url) > MAX_URL or not _LINK.fullmatch(url):
        return f"{label}: {escape_mrkdwn(url)}"
    return f"<{url.replace('&', '&amp;')}|{label}>"


def _context(alert: AlertRecord) -> dict[str, Any]:
    items: Iterable[str | None] = (
        templated_link(alert.runbook, "Runbook", alert),
        templated_link(alert.dashboard, "Dashboard", alert),
        f"fingerprint `{escape_mrkdwn(alert.fingerprint, 64)}`",
        f"episode {escape_mrkdwn(alert.episode_id, 100)}",
        f"rule {escape_mrkdwn(alert.rule_version, 64)}" if alert.rule_version else None,
    )
    text = " · ".join(item for item in items if item)
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def button_value(alert: AlertRecord) -> str:
    """What a button carries back: the episode, and the metric and slice a snooze silences.

    Slack signs the request that returns it, so the endpoint can trust it; 2000 characters is
    Slack's limit for a button value: a slice that long is dropped (the snooze is metric-wide),
    then the metric (the button acknowledges only), and the value is always whole JSON.
    """
    full = {"episode_id": alert.episode_id, "metric": alert.metric, "slice": alert.slice}
    for value in (full, {**full, "slice": {}}, {"episode_id": alert.episode_id}):
        text = _json_without_controls(value)
        if len(text) <= MAX_BUTTON_VALUE:
            return text
    # One character is at most 12 in JSON (a surrogate pair as two \u escapes).
    return _json_without_controls({"episode_id": alert.episode_id[: MAX_BUTTON_VALUE // 13]})


def _json_without_controls(value: object) -> str:
    """JSON with &, <, > as \\u escapes: still the same JSON, never mrkdwn, wherever it lands."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _buttons(alert: AlertRecord) -> dict[str, Any]:
    """Firing: Acknowledge, the snoozes and the verdicts; resolved: the verdicts only (an
    analyst often knows whether it was real once it is over)."""
    value = button_value(alert)

    def button(text: str, action_id: str, **extra: str) -> dict[str, Any]:
        return {"type": "button", "text": {"type": "plain_text", "text": text},
                "action_id": action_id, "value": value, **extra}

    verdicts = [button("Real issue", REAL_ACTION_ID),
                button("False alarm", FALSE_ALARM_ACTION_ID, style="danger")]
    handling = [button("Acknowledge", ACK_ACTION_ID, style="primary"),
                *(button(f"Snooze {hours}h", action_id)
                  for action_id, hours in SNOOZE_ACTION_IDS.items())]
    return {
        "type": "actions",
        "block_id": "stream_guard.actions",
        "elements": [*(handling if alert.status == "firing" else []), *verdicts],
    }


_VERDICT = {"real": ":dart: Marked a real issue", "false_alarm": ":no_bell: Marked a false alarm"}


def _clock_time(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, UTC):%H:%M} UTC"


def _handling(handling: Handling) -> dict[str, Any] | None:
    parts = []
    if handling.acked_by:
        when = f" at {_clock_time(handling.acked_at_ms)}" if handling.acked_at_ms else ""
        parts.append(f":eyes: Acknowledged by {mention(handling.acked_by)}{when}")
    if handling.snoozed_by and handling.snoozed_until_ms:
        until = _clock_time(handling.snoozed_until_ms)
        parts.append(f":zzz: Snoozed until {until} by {mention(handling.snoozed_by)}")
    if handling.judged_by and handling.verdict in _VERDICT:
        parts.append(f"{_VERDICT[handling.verdict]} by {mention(handling.judged_by)}")
    if not parts:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def render_parent(
    alert: AlertRecord, now_ms: int, handling: Handling | None = None,
    peers: Sequence[Peer] = (),
) -> SlackMessage:
    """The thread's parent: the alert at a glance; firing ones carry Acknowledge, Snooze 1h /
    4h / 24h, Real issue and False alarm, resolved ones the last two.

    `handling` (an ack, a snooze, a verdict) is shown under the alert, so everyone in the
    channel sees that someone took it; `peers`, the co-moving episodes of other metrics
    (whichever owner raised them), under the root-cause hints.
    """
    headline = _title(alert)
    if alert.description:
        headline += f"\n{escape_mrkdwn(alert.description, 1000)}"
    return _message(
        _fallback(alert),
        [
            _section(headline),
            _fields(alert, now_ms),
            _hints(alert),
            _peers(alert, peers),
            _firing_slices(alert) if len(alert.firing_slices) > 1 else None,
            _context(alert),
            _handling(handling) if handling is not None else None,
            _buttons(alert) if alert.status in ("firing", "resolved") else None,
        ],
    )


def _fallback(alert: AlertRecord) -> str:
    """Plain text for notifications and clients without blocks (escaped like the rest)."""
    state = "RESOLVED" if alert.status == "resolved" else escape_mrkdwn(alert.severity.upper(), 20)
    metric, where = escape_mrkdwn(alert.metric, MAX_NAME), _slice_text(alert.slice)
    return f"[{state}] {metric} {alert.direction} in {where}: " + _plain_value(alert)


def _plain_value(alert: AlertRecord) -> str:
    so_far = _so_far_line(alert)
    if so_far is not None:
        return so_far
    if alert.value is None:
        return "no data"
    if alert.expected is None:
        return _num(alert.value)
    return f"{_num(alert.value)} vs expected {_num(alert.expected)}"


def render_reply(
    alert: AlertRecord,
    reason: str,
    *,
    previous_severity: str,
    previous_slices: Iterable[str],
    first_sent_ms: int,
    now_ms: int,
) -> SlackMessage:
    """A thread reply for an escalation, a repeat reminder or the resolution."""
    value = f"{_value_line(alert)} · score {_score(alert.score)}"
    if reason == "resolved":
        took = _lasted(alert)
        text = (f":white_check_mark: Resolved after {took} · peak score {alert.peak_score:.1f}."
                f"\nLast window: {value}")
    elif reason == "escalated":
        text = ":arrow_up: Escalated"
        if alert.severity != previous_severity:
            severity, was = escape_mrkdwn(alert.severity, 20), escape_mrkdwn(previous_severity, 20)
            text += f" to *{severity}* (was {was})"
        text += _new_slices(sorted(set(alert.firing_keys()) - set(previous_slices)))
        text += f"\n{_as_of(alert)}: {value}"
    else:
        since = human_duration(now_ms - first_sent_ms)
        text = (f":repeat: Still firing ({since} since the first notification)."
                f"\n{_as_of(alert)}: {value}")
    fallback = f"{escape_mrkdwn(alert.metric, MAX_NAME)}: {escape_mrkdwn(reason.replace('_', ' '))}"
    return _message(fallback, [_section(text)])


def _as_of(alert: AlertRecord) -> str:
    """'As of 15:00 UTC': the end of the window the numbers stop at (not the reminder's time)."""
    end = alert.window_end
    return f"As of {end:%H:%M} UTC" if end.date() == alert.started_at.date() else (
        f"As of {end:%Y-%m-%d %H:%M} UTC")


def _new_slices(new: Sequence[str]) -> str:
    """'New slices: a, b, … 3 more slices', leaving room in the section for what follows."""
    if not new:
        return ""
    shown = [escape_mrkdwn(key) for key in new[:MAX_SLICES]]
    return fit_items(
        "\nNew slices: ",
        shown,
        total=len(new),
        noun="slice",
        limit=MAX_SECTION_TEXT - 500,
        sep=", ",
    )
