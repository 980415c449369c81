"""A PNG of an alert's slice: actual vs expected over its recent windows, the episode shaded.

Rendered from the record alone (`AlertRecord.series`, `so_far`), with matplotlib's Agg canvas
on a `Figure` of its own (no pyplot, no display, no global state), so it can run in a worker
thread. `render_chart` returns None when the record carries no series.
"""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure

from stream_guard.types import AlertRecord, format_slice, slice_key

__all__ = ["PNG_SIGNATURE", "chart_title", "render_chart"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SIZE_IN = (8.0, 3.2)
_DPI = 100


def chart_title(alert: AlertRecord) -> str:
    """'gmv · region=EU · last day' (plain text: Slack shows a file's title as is)."""
    unit = f" ({alert.unit})" if alert.unit else ""
    return f"{alert.metric}{unit} · {format_slice(slice_key(alert.slice))} · last day"[:200]


def render_chart(alert: AlertRecord) -> bytes | None:
    """The PNG's bytes, or None when the record has no series to draw."""
    if not alert.series:
        return None
    fig = Figure(figsize=_SIZE_IN, dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ends = [float(date2num(p.end)) for p in alert.series]
    ax.plot(ends, [p.actual for p in alert.series], color="#1f77b4", marker=".", label="actual")
    expected = [(x, p.expected) for x, p in zip(ends, alert.series, strict=True)
                if p.expected is not None]
    if expected:
        ax.plot([x for x, _ in expected], [y for _, y in expected], color="#7f7f7f",
                linestyle="--", label="expected")
    _shade_episode(ax, alert, ends[0])
    ax.set_title(chart_title(alert), fontsize=10)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _shade_episode(ax: Axes, alert: AlertRecord, first: float) -> None:
    since = alert.so_far.since if alert.so_far else alert.started_at
    ax.axvspan(max(float(date2num(since)), first), float(date2num(alert.window_end)),
               color="#d62728", alpha=0.15, label="episode")
