"""Backtest reports: a table in the terminal, JSON + Markdown files, and plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import orjson
from rich.table import Table

from stream_guard.backtest.evaluate import Evaluation, Incident
from stream_guard.types import Score, SliceKey, format_slice, slice_key

__all__ = ["SeriesRecorder", "score_table", "write_report"]

_COLUMNS = ("incidents", "detected", "episodes", "precision", "recall",
            "median_delay_windows", "median_delay_minutes", "top_hint_rate",
            "interventions_named")


class SeriesRecorder:
    """Keeps (time, value, expected) of the global series and of the incidents' slices."""

    def __init__(self, incidents: list[Incident]) -> None:
        self.wanted = {(i.metric, slice_key(i.slice)) for i in incidents}
        self.series: dict[tuple[str, SliceKey], list[tuple[int, float, float | None, bool]]] = (
            defaultdict(list))

    def __call__(self, s: Score) -> None:
        key = (s.point.metric, s.point.slice)
        if not s.point.slice or key in self.wanted:
            self.series[key].append((s.point.window_start_ms, s.point.value, s.expected,
                                     s.anomalous))


def score_table(evals: dict[str, Evaluation]) -> Table:
    """One row per metric and configuration."""
    table = Table("config", "metric", *_COLUMNS, title="backtest")
    for name, ev in evals.items():
        for row in [*(m.as_row() for m in ev.by_metric.values()), ev.total.as_row()]:
            table.add_row(name, row["metric"], *(str(row[c]) for c in _COLUMNS))
    return table


def _dt(ms: int) -> Any:
    return mdates.num2date(ms / 86400_000)


def _plot_series(ax: Any, points: list[tuple[int, float, float | None, bool]], title: str) -> None:
    t = [_dt(p[0]) for p in points]
    ax.plot(t, [p[1] for p in points], lw=0.8, label="value")
    ax.plot(t, [p[2] if p[2] is not None else float("nan") for p in points], lw=0.8,
            ls="--", label="expected")
    flagged = [(ti, p[1]) for ti, p in zip(t, points, strict=True) if p[3]]
    if flagged:
        ax.scatter(*zip(*flagged, strict=True), s=8, c="red", zorder=3, label="anomalous")
    ax.set_title(title, fontsize=9)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%a %H:%M"))
    ax.tick_params(labelsize=7)


def write_report(
    out_dir: Path, name: str, ev: Evaluation, incidents: list[Incident], rec: SeriesRecorder
) -> list[Path]:
    """summary.json, report.md, and one PNG per metric plus one of the incidents' slices."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": name,
        "metrics": [m.as_row() for m in ev.by_metric.values()],
        "total": ev.total.as_row(),
        "matches": ev.matches,
        "false_episodes": [e.episode_id for e in ev.false_episodes],
    }
    (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    files = [out_dir / "summary.json", _markdown(out_dir, name, ev, incidents)]
    metrics = sorted({m for m, _ in rec.series})
    fig, axes = plt.subplots(len(metrics), 1, figsize=(13, 2.6 * len(metrics)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        _plot_series(ax, rec.series[(metric, ())], f"{metric} (global)")
        for inc in incidents:
            if inc.metric == metric:
                ax.axvspan(_dt(inc.start_ms), _dt(inc.end_ms), color="orange", alpha=0.25)
        for e in ev.episodes:
            if e.metric == metric:
                ok = e not in ev.false_episodes
                ax.axvline(_dt(e.first_end_ms), color="green" if ok else "red", lw=0.8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{name}: series, incidents (orange), episodes (green = true, red = false)")
    fig.tight_layout()
    fig.savefig(out_dir / "metrics.png", dpi=110)
    plt.close(fig)
    files.append(out_dir / "metrics.png")
    files.append(_incident_grid(out_dir, incidents, rec, ev))
    return files


def _incident_grid(out_dir: Path, incidents: list[Incident], rec: SeriesRecorder,
                   ev: Evaluation) -> Path:
    cols = 3
    rows = max(1, -(-len(incidents) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(15, 2.8 * rows), squeeze=False)
    for ax, inc in zip(axes.flat, incidents, strict=False):
        span = 12 * 3600_000
        points = [p for p in rec.series[(inc.metric, slice_key(inc.slice))]
                  if inc.start_ms - span <= p[0] <= inc.end_ms + span]
        hit = "detected" if ev.matches.get(inc.id) else "MISSED"
        _plot_series(ax, points, f"{inc.id} {inc.metric} {format_slice(slice_key(inc.slice))}"
                     f" ({hit})")
        ax.axvspan(_dt(inc.start_ms), _dt(inc.end_ms), color="orange", alpha=0.25)
    for ax in list(axes.flat)[len(incidents):]:
        ax.axis("off")
    fig.tight_layout()
    path = out_dir / "incidents.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _markdown(out_dir: Path, name: str, ev: Evaluation, incidents: list[Incident]) -> Path:
    lines = [f"# Backtest: {name}", "", "| metric | " + " | ".join(_COLUMNS) + " |",
             "|---" * (len(_COLUMNS) + 1) + "|"]
    for row in [*(m.as_row() for m in ev.by_metric.values()), ev.total.as_row()]:
        lines.append(f"| {row['metric']} | " + " | ".join(str(row[c]) for c in _COLUMNS) + " |")
    lines += ["", "## Incidents", ""]
    for inc in incidents:
        eps = ev.matches.get(inc.id) or ["**missed**"]
        lines.append(f"- {inc.id} {inc.metric} {format_slice(slice_key(inc.slice))} "
                     f"({inc.cause}): {', '.join(eps)}")
    lines += ["", "## False episodes", ""]
    lines += [f"- {e.episode_id} ({format_slice(slice_key(e.slice))})" for e in ev.false_episodes]
    lines += ["", "![metrics](metrics.png)", "", "![incidents](incidents.png)"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
