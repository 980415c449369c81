"""Alerts in the terminal, for replay and the demo: the content of the Slack message."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

from stream_guard.types import AlertRecord, format_slice, slice_key

__all__ = ["print_alert", "render_alert"]

_STYLE = {"critical": "bold red", "warning": "yellow", "resolved": "green"}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.4g}" if abs(x) < 1 else f"{x:,.0f}"


def render_alert(a: AlertRecord) -> str:
    """Plain text of an alert record (no markup from event data reaches the terminal)."""
    where = format_slice(slice_key(a["slice"]))
    head = f"[{a['status'].upper()}/{a['severity']}] {a['metric']} {a['direction']} · {where}"
    lines = [head, f"window {a['window_start']} → {a['window_end']}  ({a['reason']})"]
    if a["status"] == "firing" and a["value"] is not None:
        change = ""
        if a["expected"]:
            change = f" ({(a['value'] - a['expected']) / abs(a['expected']):+.0%})"
        lines.append(f"value {_fmt(a['value'])} vs expected {_fmt(a['expected'])}{change}"
                     f", score {a['score']:.1f}")
    lines += [f"  • {h['kind']}: {h['summary']}" for h in a["hints"]]
    lines.append(f"fingerprint {a['fingerprint']} · episode {a['episode_id']}")
    return "\n".join(lines)


def print_alert(console: Console, a: AlertRecord) -> None:
    style = _STYLE["resolved"] if a["status"] == "resolved" else _STYLE.get(a["severity"], "")
    console.print(Panel(render_alert(a), border_style=style, expand=False), markup=False)
