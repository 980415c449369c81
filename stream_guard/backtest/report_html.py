"""The backtest report as one self-contained HTML page: scores, incidents, false episodes and
the plots, embedded as PNG data URIs (one file to open or send; nothing is fetched, no script).

Every text that comes from rules, labels or alerts is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from stream_guard.backtest.evaluate import Evaluation, Incident
from stream_guard.backtest.report import COLUMNS, ConfigInfo, incident_rows, score_rows
from stream_guard.types import format_slice, slice_key

__all__ = ["render_html", "write_html"]

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.total td { font-weight: bold; }
.missed { color: #b00020; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def _cell(value: Any) -> str:
    """A table cell's text: floats to 3 decimals at most, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return escape(str(value))


def _table(rows: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in ("metric", *COLUMNS))
    body = []
    for row in rows:
        cells = "".join(f"<td>{_cell(row[c])}</td>" for c in ("metric", *COLUMNS))
        body.append(f'<tr{" class=total" if row["metric"] == "all" else ""}>{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _incidents(ev: Evaluation, incidents: list[Incident]) -> str:
    items = []
    for inc in incident_rows(ev, incidents):
        found = (escape(", ".join(inc["episodes"])) if inc["episodes"]
                 else '<span class="missed">missed</span>')
        items.append(f"<li>{escape(inc['id'])} {escape(inc['metric'])} {escape(inc['slice'])} "
                     f"({escape(inc['cause'])}): {found}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No labelled incidents.</p>"


def _false(ev: Evaluation) -> str:
    items = [f"<li>{escape(e.episode_id)} ({escape(format_slice(slice_key(e.slice)))})</li>"
             for e in ev.false_episodes]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>None.</p>"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(path.name)}</figcaption></figure>")


def render_html(
    info: ConfigInfo, ev: Evaluation, incidents: list[Incident], images: Sequence[Path]
) -> str:
    """The page as text."""
    title = escape(f"Backtest: {info.title()}")
    overrides = "".join(
        f"<li>detector of {escape(o['metric'])} overridden by "
        f"<code>--detector {escape(o['option'])}</code></li>" for o in info.overrides)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>", f"<p>Rules: <code>{escape(info.rules_dir)}</code></p>",
        f"<ul>{overrides}</ul>" if overrides else "",
        "<h2>Scores</h2>", _table(score_rows(ev)),
        "<h2>Incidents</h2>", _incidents(ev, incidents),
        "<h2>False episodes</h2>", _false(ev),
        "<h2>Plots</h2>", *(_image(p) for p in images),
        "</body></html>", ""])


def write_html(
    out_dir: Path, info: ConfigInfo, ev: Evaluation, incidents: list[Incident],
    images: Sequence[Path],
) -> Path:
    """``report.html`` in `out_dir`."""
    path = out_dir / "report.html"
    path.write_text(render_html(info, ev, incidents, images), encoding="utf-8")
    return path
