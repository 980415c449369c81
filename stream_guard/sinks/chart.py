"""A PNG of an alert: actual vs expected over the last day, the episode shaded.

Rendered from the record alone (`AlertRecord.series`, `metric_series`, `so_far`), with
matplotlib's Agg canvas on a `Figure` of its own (no pyplot, no display, no global state), so
it can run in a worker thread. A slice episode gets two panels: the whole metric above, the
slice below (whose history starts when it first moved). `render_chart` returns None when the
record carries no series.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter, date2num
from matplotlib.figure import Figure

from stream_guard.types import AlertRecord, SeriesPoint, format_slice, slice_key

__all__ = ["PNG_SIGNATURE", "chart_title", "render_chart"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_WIDTH_IN, _PANEL_IN = 8.0, 2.6
_DPI = 100


def chart_title(alert: AlertRecord) -> str:
    """'gmv (USD) · region=EU · last day' (plain text: Slack shows a file's title as is)."""
    unit = f" ({alert.unit})" if alert.unit else ""
    return f"{alert.metric}{unit} · {format_slice(slice_key(alert.slice))} · last day"[:200]


def render_chart(alert: AlertRecord) -> bytes | None:
    """The PNG's bytes, or None when the record has no series to draw."""
    if not alert.series:
        return None
    panels = [(alert.metric_series, f"{alert.metric}: whole metric")] if alert.metric_series else []
    panels.append((alert.series, chart_title(alert)))
    fig = Figure(figsize=(_WIDTH_IN, _PANEL_IN * len(panels) + 0.4), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (series, title) in zip(axes, panels, strict=True):
        _panel(ax, series, alert)
        ax.set_title(title, fontsize=10)
    axes[-1].xaxis.set_major_formatter(DateFormatter("%H:%M"))
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _panel(ax: Axes, series: Sequence[SeriesPoint], alert: AlertRecord) -> None:
    ends = [float(date2num(p.end)) for p in series]
    ax.plot(ends, [p.actual for p in series], color="#1f77b4", marker=".", label="actual")
    expected = [(x, p.expected) for x, p in zip(ends, series, strict=True)
                if p.expected is not None]
    if expected:
        ax.plot([x for x, _ in expected], [y for _, y in expected], color="#7f7f7f",
                linestyle="--", label="expected")
    since = alert.so_far.since if alert.so_far else alert.started_at
    ax.axvspan(max(float(date2num(since)), ends[0]), float(date2num(alert.window_end)),
               color="#d62728", alpha=0.15, label="episode")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
