"""Alerts in the terminal, for replay and the demo: the content of the Slack message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.panel import Panel

from stream_guard.types import AlertRecord, epoch_ms, format_slice, iso_utc, slice_key

__all__ = ["print_alert", "render_alert"]

_STYLE = {"critical": "bold red", "warning": "yellow", "resolved": "green"}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.4g}" if abs(x) < 1 else f"{x:,.0f}"


def render_alert(alert: AlertRecord | Mapping[str, Any]) -> str:
    """Plain text of an alert record (no markup from event data reaches the terminal); a record
    read as JSON from a topic or file is parsed first (InvalidEvent if unreadable)."""
    a = AlertRecord.parse(alert)
    where = format_slice(slice_key(a.slice))
    window = f"{iso_utc(epoch_ms(a.window_start))} → {iso_utc(epoch_ms(a.window_end))}"
    lines = [f"[{a.status.upper()}/{a.severity}] {a.metric} {a.direction} · {where}",
             f"window {window}  ({a.reason})"]
    if a.status == "firing" and a.value is not None:
        change = ""
        if a.expected:
            change = f" ({(a.value - a.expected) / abs(a.expected):+.0%})"
        lines.append(f"value {_fmt(a.value)} vs expected {_fmt(a.expected)}{change}"
                     f", score {a.score:.1f}")
    lines += [f"  • {h.kind}: {h.summary}" for h in a.hints]
    lines.append(f"fingerprint {a.fingerprint} · episode {a.episode_id}")
    return "\n".join(lines)


def print_alert(console: Console, alert: AlertRecord | Mapping[str, Any]) -> None:
    """The alert in a panel coloured by severity (green once resolved)."""
    a = AlertRecord.parse(alert)
    style = _STYLE["resolved"] if a.status == "resolved" else _STYLE.get(a.severity, "")
    console.print(Panel(render_alert(a), border_style=style, expand=False), markup=False)
