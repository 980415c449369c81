"""`stream-guard rules test RULE.yaml --input DUMP`: the rule's episodes per day and a plot,
the same episodes a replay of every rule raises for it; mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_guard import cli
from stream_guard.backtest.replay import build_replayer, replay
from stream_guard.simulate.simulation import Simulation, SimulationConfig

REPO = Path(__file__).resolve().parents[3]
SIMULATION = SimulationConfig(days=3, seed=3, scale=0.05)  # raises a gmv episode


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rule-test") / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in Simulation(SIMULATION).records()))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--topics-dir", str(REPO / "topics"), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_rule_raises_what_a_full_replay_raises_for_it(
    dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = replay(build_replayer(REPO / "alert_rules", REPO / "topics"), [dump])
    expected = sorted({a.episode_id for a in full.alerts if a.metric == "gmv"})
    assert expected  # the simulation raises gmv episodes
    plot = tmp_path / "gmv.png"
    code, out, _ = _run(capsys, "rules", "test", str(REPO / "alert_rules" / "gmv.yaml"),
                        "--input", str(dump), "--plot", str(plot), "--json")
    assert code == 0
    data = json.loads(out)
    assert sorted(e["episode_id"] for e in data["episodes"]) == expected
    assert list(data["episodes_per_day"]) == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert sum(data["episodes_per_day"].values()) == len(expected)
    first = data["episodes"][0]
    assert {"day", "started_at", "slice", "severity", "peak_score", "lasted", "top_hint"} <= set(
        first)
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_the_text_lists_days_and_episodes_with_their_slices(
    dump: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "rules", "test", str(REPO / "alert_rules" / "gmv.yaml"),
                        "--input", str(dump), "--plot", str(tmp_path / "p.png"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("gmv@1: ") and "over 3 days" in lines[0]
    assert [line[:10] for line in lines if line[:4] == "2026"] == [
        "2026-03-02", "2026-03-03", "2026-03-04"]
    assert any("peak" in line and "lasted" in line for line in lines)
    assert f"plot: {tmp_path / 'p.png'}" in out


def test_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "gmv.yaml"
    broken.write_text("metric: gmv\nvalue: sum\nwindow: 7m\n")
    code, _, err = _run(capsys, "rules", "test", str(broken), "--input", str(broken))
    assert code == 2 and err.startswith("configuration error: ") and "Traceback" not in err
    code, _, err = _run(capsys, "rules", "test", str(tmp_path / "none.yaml"), "--input", "x")
    assert code == 1 and "no such file" in err
    code, _, err = _run(capsys, "rules", "test", str(broken))
    assert code == 2 and "--input" in err
