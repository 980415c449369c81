"""Slack Block Kit messages for alerts, with every foreign text escaped.

Everything that comes from events or rules (slice values, seller ids, categories, descriptions,
hint text) goes through `escape_mrkdwn`, so it can never become a mention, a channel broadcast or
a disguised link. The only mentions are owners configured as Slack ids, and the only links are
runbook/dashboard URLs that look like plain http(s) URLs.

>>> escape_mrkdwn("<!channel> <https://evil|click> & co")
'&lt;!channel&gt; &lt;https://evil|click&gt; &amp; co'
>>> mention("S0123ABC"), mention("U0123ABC"), mention("<!here>")
('<!subteam^S0123ABC>', '<@U0123ABC>', '&lt;!here&gt;')
>>> human_duration(5_400_000)
'1 hour 30 minutes'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stream_guard.types import format_slice, slice_key

if TYPE_CHECKING:
    from stream_guard.alert.notify import AlertUpdate

__all__ = [
    "ACK_ACTION_ID",
    "SNOOZE_ACTION_ID",
    "Handling",
    "SlackMessage",
    "button_value",
    "escape_mrkdwn",
    "human_duration",
    "link",
    "mention",
    "relative_time",
    "render_parent",
    "render_reply",
]

ACK_ACTION_ID = "stream_guard.ack"
SNOOZE_ACTION_ID = "stream_guard.snooze_1h"
MAX_HINTS = 5  # an analyst reads the top few; the rest is noise in a notification
MAX_SLICES = 5
MAX_FIELD = 300  # characters of one foreign text, before escaping (Slack caps sections at 3000)

_SEVERITY_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}
_HINT_LABEL = {
    "slice": "Slice",
    "metric": "Co-moving metric",
    "intervention": "Intervention",
    "external": "External factor",
}
_SUBTEAM = re.compile(r"^S[A-Z0-9]{2,}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_URL = re.compile(r"^https?://[^\s<>|&]+$")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What chat.postMessage / chat.update take: a plain-text fallback and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Handling:
    """Who is on an episode, shown on its parent: an acknowledgement and/or an active snooze.

    `acked_by` and `snoozed_by` are Slack user ids from signed button presses (they become
    mentions only if they look like ids, like rule owners); names are escaped as usual.
    """

    acked_by: str | None = None
    acked_at_ms: int | None = None
    snoozed_by: str | None = None
    snoozed_until_ms: int | None = None


def escape_mrkdwn(text: object, limit: int = MAX_FIELD) -> str:
    """Slack's three control characters as entities, after clipping to `limit` characters."""
    raw = str(text)
    if len(raw) > limit:
        raw = raw[: limit - 1] + "…"
    return raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(owner: str) -> str:
    """Slack ids become mentions (S… user groups, U…/W… users); anything else is plain text."""
    if _SUBTEAM.match(owner):
        return f"<!subteam^{owner}>"
    if _USER.match(owner):
        return f"<@{owner}>"
    return escape_mrkdwn(owner)


def link(url: str | None, label: str) -> str | None:
    """A link when `url` is a plain http(s) URL, else the escaped text; None when absent."""
    if not url:
        return None
    return f"<{url}|{label}>" if _URL.match(url) else f"{label}: {escape_mrkdwn(url)}"


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


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _num(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.3g}"


def _slice_text(labels: Mapping[str, str]) -> str:
    return escape_mrkdwn(format_slice(slice_key(labels)))


def _score(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _value_line(alert: AlertUpdate) -> str:
    if alert.value is None:
        return "no data in this window"
    if alert.expected is None:
        return f"{_num(alert.value)} (no baseline yet)"
    change = ""
    if alert.expected:
        change = f" ({(alert.value - alert.expected) / abs(alert.expected) * 100:+.1f}%)"
    return f"{_num(alert.value)} vs expected {_num(alert.expected)}{change}"


def _title(alert: AlertUpdate) -> str:
    metric, where = escape_mrkdwn(alert.metric), _slice_text(alert.slice)
    if alert.status == "resolved":
        return f":white_check_mark: *RESOLVED* · *{metric}* was {alert.direction} · {where}"
    icon = _SEVERITY_ICON.get(alert.severity, ":large_blue_circle:")
    severity = escape_mrkdwn(alert.severity.upper(), 20)
    return f"{icon} *{severity}* · *{metric}* is {alert.direction} · {where}"


def _window(alert: AlertUpdate, now_ms: int) -> str:
    start, end = alert.window_start, alert.window_end
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    text = f"{start:%Y-%m-%d %H:%M} – {end:{end_format}} UTC"
    return f"{text}\n{relative_time(_ms(end), now_ms)}"


def _hint_lines(alert: AlertUpdate) -> list[str]:
    lines = []
    for hint in alert.hints[:MAX_HINTS]:
        label = _HINT_LABEL.get(hint.kind, "Hint")
        share = ""
        if hint.share is not None and f"{hint.share:.0%}" not in hint.summary:
            share = f" ({hint.share:.0%} of the change)"
        lines.append(f"• *{label}*: {escape_mrkdwn(hint.summary)}{share}")
    return lines


def _slice_lines(alert: AlertUpdate) -> list[str]:
    top = sorted(alert.firing_slices, key=lambda s: -s.score)[:MAX_SLICES]
    return [f"• {_slice_text(s.slice)}: {_num(s.value)} (score {s.score:.1f})" for s in top]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _fields(alert: AlertUpdate, now_ms: int) -> dict[str, Any]:
    peak = f" (peak {alert.peak_score:.1f})" if alert.peak_score is not None else ""
    pairs = [
        ("Value", _value_line(alert)),
        ("Score", f"{_score(alert.score)}{peak}"),
        ("Window", _window(alert, now_ms)),
        ("Severity", escape_mrkdwn(alert.severity, 20)),
    ]
    if alert.owner:
        pairs.append(("Owner", " ".join(mention(o) for o in re.split(r"[\s,]+", alert.owner) if o)))
    if alert.status == "resolved":
        pairs.append(("Duration", human_duration(_ms(alert.window_end) - _ms(alert.started_at))))
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in pairs]
    return {"type": "section", "fields": fields}


def _context(alert: AlertUpdate) -> dict[str, Any]:
    items: Iterable[str | None] = (
        link(alert.runbook, "Runbook"),
        link(alert.dashboard, "Dashboard"),
        f"fingerprint `{escape_mrkdwn(alert.fingerprint, 64)}`",
        f"episode {escape_mrkdwn(alert.episode_id, 100)}",
        f"rule {escape_mrkdwn(alert.rule_version, 64)}" if alert.rule_version else None,
    )
    text = " · ".join(item for item in items if item)
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def button_value(alert: AlertUpdate) -> str:
    """What a button carries back: the episode, and the metric and slice a snooze silences.

    Slack signs the request that returns it, so the endpoint can trust it; 2000 characters is
    Slack's limit for a button value (a slice that long is dropped: the snooze is metric-wide).
    """
    value = {"episode_id": alert.episode_id, "metric": alert.metric, "slice": alert.slice}
    text = _json_without_controls(value)
    if len(text) > 2000:
        text = _json_without_controls({**value, "slice": {}})
    return text[:2000]


def _json_without_controls(value: object) -> str:
    """JSON with &, <, > as \\u escapes: still the same JSON, never mrkdwn, wherever it lands."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _buttons(alert: AlertUpdate) -> dict[str, Any]:
    def button(text: str, action_id: str, **extra: str) -> dict[str, Any]:
        return {
            "type": "button",
            "text": {"type": "plain_text", "text": text},
            "action_id": action_id,
            "value": button_value(alert),
            **extra,
        }

    return {
        "type": "actions",
        "block_id": "stream_guard.actions",
        "elements": [
            button("Acknowledge", ACK_ACTION_ID, style="primary"),
            button("Snooze 1h", SNOOZE_ACTION_ID),
        ],
    }


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
    if not parts:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}


def render_parent(
    alert: AlertUpdate, now_ms: int, handling: Handling | None = None
) -> SlackMessage:
    """The thread's parent: the alert at a glance; firing ones carry Acknowledge / Snooze 1h.

    `handling` (an ack, a snooze) is shown under the alert, so everyone in the channel sees
    that someone took it.
    """
    headline = _title(alert)
    if alert.description:
        headline += f"\n{escape_mrkdwn(alert.description)}"
    blocks = [_section(headline), _fields(alert, now_ms)]
    if hints := _hint_lines(alert):
        blocks.append(_section("*Root-cause hints*\n" + "\n".join(hints)))
    if len(alert.firing_slices) > 1:
        blocks.append(_section("*Firing slices*\n" + "\n".join(_slice_lines(alert))))
    blocks.append(_context(alert))
    if handling is not None and (shown := _handling(handling)) is not None:
        blocks.append(shown)
    if alert.status == "firing":
        blocks.append(_buttons(alert))
    return SlackMessage(text=_fallback(alert), blocks=blocks)


def _fallback(alert: AlertUpdate) -> str:
    """Plain text for notifications and clients without blocks (escaped like the rest)."""
    state = "RESOLVED" if alert.status == "resolved" else alert.severity.upper()
    where = format_slice(slice_key(alert.slice))
    text = f"[{state}] {alert.metric} {alert.direction} in {where}: " + _plain_value(alert)
    return escape_mrkdwn(text, 500)


def _plain_value(alert: AlertUpdate) -> str:
    if alert.value is None:
        return "no data"
    if alert.expected is None:
        return _num(alert.value)
    return f"{_num(alert.value)} vs expected {_num(alert.expected)}"


def render_reply(
    alert: AlertUpdate,
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
        took = human_duration(_ms(alert.window_end) - _ms(alert.started_at))
        peak = f" · peak score {alert.peak_score:.1f}" if alert.peak_score is not None else ""
        text = f":white_check_mark: Resolved after {took}{peak}.\nLast window: {value}"
    elif reason == "escalated":
        text = ":arrow_up: Escalated"
        if alert.severity != previous_severity:
            severity, was = escape_mrkdwn(alert.severity, 20), escape_mrkdwn(previous_severity, 20)
            text += f" to *{severity}* (was {was})"
        new = sorted(set(alert.state().slices) - set(previous_slices))
        if new:
            text += "\nNew slices: " + ", ".join(escape_mrkdwn(s) for s in new[:MAX_SLICES])
        text += f"\nNow: {value}"
    else:
        since = human_duration(now_ms - first_sent_ms)
        text = f":repeat: Still firing ({since} since the first notification).\nNow: {value}"
    fallback = f"{alert.metric}: {reason.replace('_', ' ')}"
    return SlackMessage(text=escape_mrkdwn(fallback), blocks=[_section(text)])
