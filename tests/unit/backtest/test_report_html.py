"""The backtest report as one HTML page: escaped, self-contained, and rendered in headless
Chromium without console errors or broken images (skipped where Debian's `chromium` is absent).

`STREAM_GUARD_SCREENSHOT=docs/backtest-report.png` also saves the rendered page there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stream_guard import cli
from stream_guard.backtest.evaluate import Incident, evaluate
from stream_guard.backtest.report import ConfigInfo
from stream_guard.backtest.report_html import render_html
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from tests import browser

REPO = Path(__file__).resolve().parents[3]
NO_CHROMIUM = ("no `chromium` on PATH: install Debian's chromium (`apt-get install -y "
               "--no-install-recommends chromium`) to render the HTML report in a browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real backtest of two simulated days (incidents labelled) with its report."""
    tmp = tmp_path_factory.mktemp("report")
    sim = Simulation(SimulationConfig(days=2, seed=3, scale=0.05))
    events = tmp / "events.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in sim.records()))
    (tmp / "labels.json").write_text(json.dumps(sim.labels()))
    code = cli.main(["--topics-dir", str(REPO / "topics"), "backtest", "--input", str(events),
                     "--labels", str(tmp / "labels.json"), "--rules", str(REPO / "alert_rules"),
                     "--out", str(tmp / "out"), "--quiet"])
    assert code == 0
    return tmp / "out" / "alert_rules" / "report.html"


def test_the_page_holds_the_scores_and_its_plots_inline(report: Path) -> None:
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<h2>Scores</h2>" in html
    assert html.count('src="data:image/png;base64,') == 2  # metrics.png, incidents.png
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # nothing fetched


def test_text_from_labels_is_escaped() -> None:
    hostile = Incident("<script>alert(1)</script>", "gmv", {"region": "<b>EU</b>"}, "down", 0,
                       1, "external")
    ev = evaluate([], [hostile], {"gmv": 900_000})
    html = render_html(ConfigInfo("x<y", "rules&co"), ev, [hostile], [])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "region=&lt;b&gt;EU&lt;/b&gt;" in html and "rules&amp;co" in html


@pytest.fixture(scope="module")
def chromium() -> None:
    if browser.chromium() is None:
        pytest.skip(NO_CHROMIUM)


@pytest.mark.usefixtures("chromium")
def test_the_report_renders_in_chromium_without_errors_or_missing_images(report: Path) -> None:
    rendered = browser.render(report, screenshot=True)
    assert rendered.errors == []
    assert len(rendered.images) == 2 and rendered.broken_images == []
    assert rendered.title.startswith("Backtest: alert_rules")
    assert rendered.screenshot is not None and rendered.screenshot.startswith(b"\x89PNG")
    if target := os.environ.get("STREAM_GUARD_SCREENSHOT"):
        Path(target).write_bytes(rendered.screenshot)


@pytest.mark.usefixtures("chromium")
def test_the_check_sees_console_errors_and_broken_images(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><title>bad</title><img alt="gone" src="data:image/png;'
                    'base64,AAAA"><img alt="absent" src="missing.png">'
                    '<script>console.error("boom"); undefined_call();</script>')
    rendered = browser.render(page)
    assert sorted(rendered.broken_images) == ["absent", "gone"]
    assert any("boom" in e for e in rendered.errors)
    assert any("undefined_call" in e for e in rendered.errors)
    assert any(e.startswith("network:") for e in rendered.errors)
