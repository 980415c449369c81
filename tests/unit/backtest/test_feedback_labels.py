"""`backtest --feedback DUMP`: analysts' answers as labels; unjudged episodes left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream_guard import cli
from stream_guard.alert.silences import Feedback
from stream_guard.backtest.evaluate import load_labels
from stream_guard.backtest.feedback_labels import judged_only, labels_from_feedback
from stream_guard.backtest.replay import build_replayer, replay
from stream_guard.simulate.simulation import Simulation, SimulationConfig
from stream_guard.types import AlertRecord, epoch_ms, iso_utc

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "tests" / "unit" / "alert" / "fixtures" / "gmv_episode.jsonl"
GMV = "gmv-20260304T1400Z-3f9a0c1b"
CR = "complaint_rate-20260305T0000Z-00cc"
DAY = 86_400_000
WINDOWS = {"gmv": 900_000, "complaint_rate": 3_600_000}


def _gmv() -> list[AlertRecord]:
    return [AlertRecord.parse(line) for line in FIXTURE.read_text().splitlines()]


def _moved(records: list[AlertRecord], episode: str, metric: str, days: int) -> list[AlertRecord]:
    def shift(iso: Any) -> str:
        return iso_utc(epoch_ms(iso) + days * DAY)

    return [AlertRecord.parse({**r.to_dict(), "episode_id": episode, "metric": metric,
                               "window_start": shift(r.window_start),
                               "window_end": shift(r.window_end),
                               "started_at": shift(r.started_at)}) for r in records]


def _answer(episode: str, verdict: str) -> dict[str, Any]:
    return Feedback(episode_id=episode, verdict=verdict,  # type: ignore[arg-type]
                    user_id="U1", user_name="ana", at_ms=0).to_record()


def _dump(path: Path, alerts: list[AlertRecord], answers: list[dict[str, Any]]) -> Path:
    rows = [{"topic": "alerts", "key": a.fingerprint, "value": a.to_dict()} for a in alerts]
    rows += [{"topic": "control", "key": f"feedback-{a['episode_id']}", "value": a}
             for a in answers]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_judged_episodes_become_incidents_and_real_ones_labels(tmp_path: Path) -> None:
    alerts = _gmv() + _moved(_gmv(), CR, "complaint_rate", 1)
    dump = _dump(tmp_path / "prod.jsonl", alerts, [
        _answer(GMV, "false_alarm"), _answer(GMV, "real"),  # changed their mind: real
        _answer(CR, "false_alarm"), _answer("gone-episode", "real")])
    labels = labels_from_feedback([dump])
    assert [(i.id, i.metric, i.slice) for i in labels.judged] == [
        (GMV, "gmv", {"region": "EU"}), (CR, "complaint_rate", {"region": "EU"})]
    [real] = labels.real
    assert (iso_utc(real.start_ms), iso_utc(real.end_ms)) == (
        "2026-03-04T14:00:00Z", "2026-03-04T15:45:00Z")  # first window to the last record
    assert real.description == "judged real by ana" and labels.unmatched == 1
    (tmp_path / "labels.json").write_text(json.dumps(labels.to_json()))
    assert load_labels(tmp_path / "labels.json") == labels.real  # --labels reads them back


def test_replayed_episodes_matching_no_judged_one_are_left_out(tmp_path: Path) -> None:
    judged = labels_from_feedback([_dump(tmp_path / "prod.jsonl", _gmv(), [
        _answer(GMV, "false_alarm")])]).judged
    later = _moved(_gmv(), "gmv-later", "gmv", 2)  # nobody judged anything then
    kept = judged_only(_gmv() + later, judged, WINDOWS)
    assert {a.episode_id for a in kept} == {GMV}


def test_backtest_with_feedback_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    sim = Simulation(SimulationConfig(days=3, seed=3, scale=0.05))
    events.write_text("".join(json.dumps(r) + "\n" for r in sim.records()))
    production = replay(build_replayer(REPO / "alert_rules", REPO / "topics"), [events]).alerts
    [episode] = {a.episode_id for a in production}
    dump = _dump(tmp_path / "prod.jsonl", production, [_answer(episode, "real"),
                                                       _answer("gone", "false_alarm")])
    out = tmp_path / "report"
    code = cli.main(["--topics-dir", str(REPO / "topics"), "backtest", "--input", str(events),
                     "--feedback", str(dump), "--rules", str(REPO / "alert_rules"),
                     "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert ("labels from feedback: 1 judged episodes, 1 real; 0 replayed episodes match no "
            "judged one and are left out; 1 answers without their episode's records") in printed
    total = json.loads((out / "alert_rules" / "summary.json").read_text())["total"]
    assert (total["incidents"], total["detected"], total["precision"]) == (1, 1, 1.0)
    labels = json.loads((out / "alert_rules" / "feedback-labels.json").read_text())
    assert [i["id"] for i in labels["incidents"]] == [episode]


def test_labels_and_feedback_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["backtest", "--input", "x", "--labels", "y", "--feedback", "z"])
    assert "not allowed with" in capsys.readouterr().err
