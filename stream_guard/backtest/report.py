"""Backtest reports: a table in the terminal, JSON + Markdown files, plots, and one HTML page
with the plots inside (backtest/report_html.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import orjson
from rich.table import Table

from stream_guard.backtest.evaluate import EpisodeSummary, Evaluation, Incident
from stream_guard.types import Score, SliceKey, format_slice, iso_utc, slice_key

__all__ = ["COLUMNS", "ConfigInfo", "EpisodeDiff", "SeriesRecorder", "diff_episodes",
           "diff_lines", "incident_rows", "plot_series", "score_rows", "score_table",
           "to_datetime", "write_diff", "write_report"]

COLUMNS = ("incidents", "detected", "episodes", "precision", "recall",
            "median_delay_windows", "median_delay_minutes", "top_hint_rate", "rca_top1",
            "interventions_named")


@dataclass(frozen=True)
class ConfigInfo:
    """What a report was run with: its name, rules directory and ``--detector`` overrides
    (`run.DetectorOverride.record`: the option, the detector in effect, the one replaced)."""

    name: str
    rules_dir: str
    overrides: tuple[dict[str, Any], ...] = ()

    def title(self) -> str:
        """``alert_rules`` or ``alert_rules with --detector gmv=threshold,lower=1``."""
        given = ", ".join(o["option"] for o in self.overrides)
        return f"{self.name} with --detector {given}" if given else self.name


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


def score_rows(ev: Evaluation) -> list[dict[str, Any]]:
    """One row per metric, then the total (`MetricScore.as_row`)."""
    return [*(m.as_row() for m in ev.by_metric.values()), ev.total.as_row()]


def incident_rows(ev: Evaluation, incidents: list[Incident]) -> list[dict[str, Any]]:
    """Per incident: id, metric, slice, cause, the episodes that detected it (empty: missed)
    and its top-1 root cause (`evaluate.rca_hit`; None when missed)."""
    return [{"id": inc.id, "metric": inc.metric, "slice": format_slice(slice_key(inc.slice)),
             "cause": inc.cause, "episodes": ev.matches.get(inc.id) or [],
             "rca_top1": ev.rca[inc.id].as_dict() if inc.id in ev.rca else None}
            for inc in incidents]


def score_table(evals: dict[str, Evaluation]) -> Table:
    """One row per metric and configuration."""
    table = Table("config", "metric", *COLUMNS, title="backtest")
    for name, ev in evals.items():
        for row in score_rows(ev):
            table.add_row(name, row["metric"], *(str(row[c]) for c in COLUMNS))
    return table


def to_datetime(ms: int) -> Any:
    """Epoch ms as the datetime matplotlib plots."""
    return mdates.num2date(ms / 86400_000)


def plot_series(ax: Any, points: list[tuple[int, float, float | None, bool]], title: str) -> None:
    """Value, expected (dashed) and anomalous points (red) of one series on `ax`."""
    t = [to_datetime(p[0]) for p in points]
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
    out_dir: Path, info: ConfigInfo, ev: Evaluation, incidents: list[Incident], rec: SeriesRecorder
) -> list[Path]:
    """summary.json, report.md, and one PNG per metric plus one of the incidents' slices."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": info.name,
        "rules_dir": info.rules_dir,
        "detector_overrides": list(info.overrides),
        "metrics": [m.as_row() for m in ev.by_metric.values()],
        "total": ev.total.as_row(),
        "matches": ev.matches,
        "incidents": incident_rows(ev, incidents),
        "false_episodes": [e.episode_id for e in ev.false_episodes],
    }
    (out_dir / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    files = [out_dir / "summary.json", _markdown(out_dir, info, ev, incidents)]
    metrics = sorted({m for m, _ in rec.series})
    fig, axes = plt.subplots(len(metrics), 1, figsize=(13, 2.6 * len(metrics)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics, strict=True):
        plot_series(ax, rec.series[(metric, ())], f"{metric} (global)")
        for inc in incidents:
            if inc.metric == metric:
                ax.axvspan(to_datetime(inc.start_ms), to_datetime(inc.end_ms), color="orange",
                           alpha=0.25)
        for e in ev.episodes:
            if e.metric == metric:
                ok = e not in ev.false_episodes
                ax.axvline(to_datetime(e.first_end_ms), color="green" if ok else "red", lw=0.8)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{info.title()}: series, incidents (orange), "
                 "episodes (green = true, red = false)")
    fig.tight_layout()
    fig.savefig(out_dir / "metrics.png", dpi=110)
    plt.close(fig)
    files.append(out_dir / "metrics.png")
    files.append(_incident_grid(out_dir, incidents, rec, ev))
    from stream_guard.backtest.report_html import write_html

    files.append(write_html(out_dir, info, ev, incidents, [files[2], files[3]]))
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
        plot_series(ax, points, f"{inc.id} {inc.metric} {format_slice(slice_key(inc.slice))}"
                     f" ({hit})")
        ax.axvspan(to_datetime(inc.start_ms), to_datetime(inc.end_ms), color="orange", alpha=0.25)
    for ax in list(axes.flat)[len(incidents):]:
        ax.axis("off")
    fig.tight_layout()
    path = out_dir / "incidents.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _overrides_md(info: ConfigInfo) -> list[str]:
    lines = [f"Rules: `{info.rules_dir}`", ""]
    for o in info.overrides:
        lines.append(f"- detector of {o['metric']} overridden by `--detector {o['option']}`: "
                     f"{_detector(o['replaced'])} → {_detector(o['detector'])}")
    return [*lines, ""] if info.overrides else lines


def _detector(spec: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "type")
    return f"`{spec['type']}({params})`"


def _markdown(out_dir: Path, info: ConfigInfo, ev: Evaluation, incidents: list[Incident]) -> Path:
    lines = [f"# Backtest: {info.title()}", "", *_overrides_md(info),
             "| metric | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for row in score_rows(ev):
        lines.append(f"| {row['metric']} | " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    lines += ["", "## Incidents", ""]
    for inc in incident_rows(ev, incidents):
        eps = inc["episodes"] or ["**missed**"]
        rca = inc["rca_top1"]
        top1 = "" if rca is None else \
            f"; top-1 RCA {'hit' if rca['hit'] else 'miss'}: {rca['named']}"
        lines.append(f"- {inc['id']} {inc['metric']} {inc['slice']} ({inc['cause']}): "
                     f"{', '.join(eps)}{top1}")
    lines += ["", "## False episodes", ""]
    lines += [f"- {e.episode_id} ({format_slice(slice_key(e.slice))})" for e in ev.false_episodes]
    lines += ["", "![metrics](metrics.png)", "", "![incidents](incidents.png)"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# A/B: the episodes that differ between two configurations --------------------------------------

_EpisodeKey = tuple[str, SliceKey, int]


@dataclass(frozen=True)
class EpisodeDiff:
    """Episodes (as `_episode_row` describes them) raised by only one of two configurations, and
    the incidents only one detects. Episodes are the same when their metric, slice and first
    window agree (their ids embed the rule version, which may differ)."""

    only_a: list[dict[str, Any]]
    only_b: list[dict[str, Any]]
    detected_only_a: list[str]
    detected_only_b: list[str]


def _key(e: EpisodeSummary) -> _EpisodeKey:
    return e.metric, slice_key(e.slice), e.first_start_ms


def _episode_row(e: EpisodeSummary, ev: Evaluation) -> dict[str, Any]:
    incidents = [i for i, eps in ev.matches.items() if e.episode_id in eps]
    return {"episode_id": e.episode_id, "metric": e.metric, "slice": format_slice(slice_key(
        e.slice)), "first_window_end": iso_utc(e.first_end_ms), "records": e.records,
        "incidents": incidents}


def _only(ev: Evaluation, other: Evaluation) -> list[dict[str, Any]]:
    theirs = {_key(e) for e in other.episodes}
    return [_episode_row(e, ev) for e in ev.episodes if _key(e) not in theirs]


def _detected(ev: Evaluation) -> set[str]:
    return {i for i, eps in ev.matches.items() if eps}


def diff_episodes(a: Evaluation, b: Evaluation) -> EpisodeDiff:
    """What B raises or detects that A does not, and the reverse."""
    return EpisodeDiff(_only(a, b), _only(b, a), sorted(_detected(a) - _detected(b)),
                       sorted(_detected(b) - _detected(a)))


def _diff_line(sign: str, row: dict[str, Any]) -> str:
    verdict = f"detects {', '.join(row['incidents'])}" if row["incidents"] else "false alarm"
    return (f"{sign} {row['metric']} {row['slice']}, first window ending "
            f"{row['first_window_end']}, {row['records']} records, {verdict} "
            f"({row['episode_id']})")


def diff_lines(a: str, b: str, diff: EpisodeDiff) -> list[str]:
    """The diff as text: a header, ``-`` for episodes only in A, ``+`` for those only in B."""
    lines = [f"episodes {a} -> {b}: {len(diff.only_a)} only in {a} (-), "
             f"{len(diff.only_b)} only in {b} (+)"]
    lines += [_diff_line("-", row) for row in diff.only_a]
    lines += [_diff_line("+", row) for row in diff.only_b]
    for name, ids in ((a, diff.detected_only_a), (b, diff.detected_only_b)):
        if ids:
            lines.append(f"incidents detected only by {name}: {', '.join(ids)}")
    return lines


def write_diff(out_dir: Path, a: str, b: str, diff: EpisodeDiff) -> list[Path]:
    """``diff-A-vs-B.json`` and ``diff-A-vs-B.md`` in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = (out_dir / f"diff-{a}-vs-{b}.{ext}" for ext in ("json", "md"))
    data = {"a": a, "b": b, **asdict(diff)}
    json_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    text = "\n".join([f"# Episodes: {a} vs {b}", "", "```diff", *diff_lines(a, b, diff), "```"])
    md_path.write_text(text + "\n")
    return [json_path, md_path]
