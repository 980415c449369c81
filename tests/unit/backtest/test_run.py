"""`stream-guard backtest` A/B: separate report directories, the episode diff, detector overrides
recorded in the report, YAML values in `--detector`; and `stream-guard --version`."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import pytest

from stream_guard import cli
from stream_guard.backtest.evaluate import Incident, evaluate
from stream_guard.backtest.report import diff_episodes, diff_lines
from stream_guard.backtest.run import config_names, parse_detector_override
from stream_guard.errors import ConfigError
from stream_guard.types import AlertRecord, iso_utc

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "unit" / "alert" / "fixtures" / "gmv_episode.jsonl"
T0 = 1_772_409_600_000  # 2026-03-02T00:00:00Z
MIN = 60_000


# Names of the report directories --------------------------------------------------------------


def test_same_folder_names_get_distinct_directories(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_names([Path("alert_rules"), Path("b/alert_rules")]) == [
        f"{tmp_path.name}-alert_rules", "b-alert_rules"]
    assert config_names([Path("x/b/rules"), Path("y/b/rules"), Path("z/c")]) == [
        "x-b-rules", "y-b-rules", "c"]
    assert config_names([Path("rules"), Path("./rules"), Path("rules")]) == [
        "rules", "rules-2", "rules-3"]
    assert config_names([tmp_path / "alert_rules"]) == ["alert_rules"]


# --detector -------------------------------------------------------------------------------------


def test_detector_values_are_yaml_lists_numbers_and_null() -> None:
    o = parse_detector_override("gmv=seasonal,horizons=[1, 2, 4],alpha=0.1,warmup_periods=2")
    assert o.metric == "gmv" and o.detector.type == "seasonal"
    assert o.detector.params == {"horizons": [1, 2, 4], "alpha": 0.1, "warmup_periods": 2}
    assert parse_detector_override("x=threshold,lower=null,upper=1500.5").detector.params == {
        "lower": None, "upper": 1500.5}


@pytest.mark.parametrize(("option", "problem"), [
    ("gmv=seasonal,horizons=[1,2", "horizons: '[1,2' is not a YAML value"),
    ("gmv=seasonal,horizons=7", "horizons: Input should be a valid tuple"),
    ("gmv=seasonal,alpha", "expected k=v, got 'alpha'"),
    ("gmv=seasonal,alpha=1,alpha=2", "alpha given twice"),
    ("gmv=nope", "unknown detector type 'nope'"),
    ("gmv", "expected METRIC=TYPE[,k=v]"),
    ("gmv=seasonal,alpha=.nan", "alpha: must be a finite number"),
])
def test_a_bad_detector_option_is_one_line_naming_it(option: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_detector_override(option)
    message = str(error.value)
    assert message.startswith(f"--detector {option!r}: ") and problem in message
    assert "\n" not in message


def test_the_command_prints_a_bad_detector_option_in_one_line(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["backtest", "--input", "x", "--labels", "y", "--quiet",
                     "--detector", "gmv=seasonal,horizons=[1,x"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("configuration error: --detector 'gmv=seasonal,horizons=[1,x'")


# The episode diff ------------------------------------------------------------------------------


def _alert(episode: str, start_ms: int, slice_: dict[str, str]) -> AlertRecord:
    base = json.loads(FIXTURE.read_text().splitlines()[0])
    return AlertRecord.parse({**base, "episode_id": episode, "slice": slice_, "hints": [],
                              "window_start": iso_utc(start_ms),
                              "window_end": iso_utc(start_ms + 15 * MIN)})


def test_diff_lists_episodes_and_detections_of_one_side_only() -> None:
    incidents = [Incident("inc-1", "gmv", {}, "down", T0 + 60 * MIN, T0 + 120 * MIN, "external")]
    windows = {"gmv": 15 * MIN}
    shared = _alert("gmv@1-shared", T0, {"region": "EU"})
    a = evaluate([shared, _alert("gmv@1-false", T0 + 300 * MIN, {})], incidents, windows)
    b = evaluate([_alert("gmv@2-shared", T0, {"region": "EU"}),  # same episode, another id
                  _alert("gmv@2-hit", T0 + 60 * MIN, {})], incidents, windows)
    diff = diff_episodes(a, b)
    assert [r["episode_id"] for r in diff.only_a] == ["gmv@1-false"]
    assert [(r["episode_id"], r["incidents"]) for r in diff.only_b] == [("gmv@2-hit", ["inc-1"])]
    assert (diff.detected_only_a, diff.detected_only_b) == ([], ["inc-1"])
    assert diff_lines("A", "B", diff) == [
        "episodes A -> B: 1 only in A (-), 1 only in B (+)",
        "- gmv global, first window ending 2026-03-02T05:15:00Z, 1 records, false alarm "
        "(gmv@1-false)",
        "+ gmv global, first window ending 2026-03-02T01:15:00Z, 1 records, detects inc-1 "
        "(gmv@2-hit)",
        "incidents detected only by B: inc-1",
    ]


# A/B end to end ---------------------------------------------------------------------------------


def _orders(path: Path, minutes: int) -> Path:
    """One 10.0 order a minute in EU: 150 a window, under B's threshold of 1000."""
    lines = []
    for i in range(minutes):
        event = {"event_id": f"o-{i}", "ts": iso_utc(T0 + i * MIN), "order_id": f"ord-{i}",
                 "buyer_id": "b1", "seller_id": "s1", "region": "EU", "category": "toys",
                 "seller_tier": "gold", "payment_method": "card", "channel": "app",
                 "gmv": 10.0}
        lines.append(json.dumps({"topic": "orders", "key": "s1", "value": event}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def ab(tmp_path: Path) -> tuple[Path, Path]:
    """Two rules directories both named alert_rules; B's gmv fires under 1,000 a window."""
    a, b = tmp_path / "a" / "alert_rules", tmp_path / "b" / "alert_rules"
    for d in (a, b):
        shutil.copytree(REPO / "alert_rules", d)
    gmv = (b / "gmv.yaml").read_text()
    start, end = gmv.index("detector:"), gmv.index("alert:")
    (b / "gmv.yaml").write_text(gmv[:start] + "detector: {type: threshold, lower: 1000}\n"
                                + gmv[end:])
    return a, b


def test_ab_reports_go_to_separate_directories_with_a_diff_and_the_overrides(
    ab: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = ab
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"incidents": []}))
    out = tmp_path / "report"
    before = {p: sorted(x.name for x in p.iterdir()) for p in (a, b)}
    code = cli.main(["--topics-dir", str(REPO / "topics"), "backtest",
                     "--input", str(_orders(tmp_path / "orders.jsonl", 120)),
                     "--labels", str(labels), "--rules", str(a), "--rules", str(b),
                     "--out", str(out), "--quiet",
                     "--detector", "complaint_rate=rate,horizons=[1, 2],min_excess=4"])
    printed = capsys.readouterr().out
    assert code == 0
    assert {p: sorted(x.name for x in p.iterdir()) for p in (a, b)} == before  # untouched
    assert sorted(p.name for p in out.iterdir()) == [
        "a-alert_rules", "b-alert_rules", "diff-a-alert_rules-vs-b-alert_rules.json",
        "diff-a-alert_rules-vs-b-alert_rules.md"]
    summaries = [json.loads((out / n / "summary.json").read_text())
                 for n in ("a-alert_rules", "b-alert_rules")]
    assert [(s["config"], s["rules_dir"]) for s in summaries] == [
        ("a-alert_rules", str(a)), ("b-alert_rules", str(b))]
    [override] = summaries[1]["detector_overrides"]
    assert override["option"] == "complaint_rate=rate,horizons=[1, 2],min_excess=4"
    assert override["detector"] == {"type": "rate", "horizons": [1, 2], "min_excess": 4}
    assert override["replaced"] == {"type": "auto"}  # from alert_rules/complaint_rate.yaml
    report = (out / "b-alert_rules" / "report.md").read_text()
    assert report.startswith("# Backtest: b-alert_rules with --detector complaint_rate=rate,")
    diff = json.loads((out / "diff-a-alert_rules-vs-b-alert_rules.json").read_text())
    assert diff["only_a"] == [] and [r["metric"] for r in diff["only_b"]] == ["gmv"]
    assert "+ gmv global, first window ending 2026-03-02T00:15:00Z" in printed.replace("\n", " ")


# --version --------------------------------------------------------------------------------------


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"stream-guard {importlib.metadata.version('stream-guard')}\n"


def test_version_falls_back_to_the_source_tree(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out == "stream-guard 0.1.0 (not installed)\n"
