"""`stream-guard alerts list|show`: episodes from alert records and control records in files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from stream_guard import cli
from stream_guard.alert import history
from stream_guard.alert.history import (
    file_rows,
    find_episode,
    group_episodes,
    read_rows,
    timeline_table,
)
from stream_guard.alert.silences import Ack, Silence
from stream_guard.types import AlertRecord, iso_utc

FIXTURE = Path(__file__).parent / "fixtures" / "gmv_episode.jsonl"
MIN = 60_000
T0 = 1_772_632_800_000  # 2026-03-04T14:00:00Z, the fixture's first window start
GMV = "gmv-20260304T1400Z-3f9a0c1b"
CR = "complaint_rate-20260304T1600Z-aa11bb22"


def _fixture() -> list[AlertRecord]:
    return [AlertRecord.parse(line) for line in FIXTURE.read_text().splitlines()]


def _complaints(*statuses: str) -> list[AlertRecord]:
    """An episode of complaint_rate from 16:00, one record per 30-minute window."""
    base = _fixture()[0]
    return [AlertRecord.parse({
        **base.to_dict(), "episode_id": CR, "metric": "complaint_rate", "sequence": i,
        "status": status, "reason": "new" if i == 0 else "repeat", "slice": {},
        "window_start": iso_utc(T0 + (120 + 30 * i) * MIN),
        "window_end": iso_utc(T0 + (150 + 30 * i) * MIN), "value": 0.02, "expected": 0.01,
    }) for i, status in enumerate(statuses)]


def _dump(path: Path, rows: list[tuple[str, str | None, Any]]) -> Path:
    """A record dump as `stream-guard dump` writes it."""
    lines = [json.dumps({"topic": t, "key": k, "value": v}) for t, k, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _alert_rows(records: list[AlertRecord]) -> list[tuple[str, str | None, Any]]:
    return [("alerts", r.fingerprint, r.to_dict()) for r in records]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def two_episodes(tmp_path: Path) -> Path:
    """The fixture's gmv episode (resolved at 15:45) and a complaint_rate one still firing."""
    return _dump(tmp_path / "alerts.jsonl", _alert_rows(_fixture() + _complaints(
        "firing", "firing")))


def test_list_groups_records_into_episodes_most_recent_first(
    two_episodes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "alerts", "list", "--input", str(two_episodes), "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(e["episode_id"], e["status"], e["records"]) for e in listed] == [
        (CR, "firing", 2), (GMV, "resolved", 4)]
    gmv = listed[1]
    assert (gmv["started_at"], gmv["updated_at"], gmv["severity"]) == (
        "2026-03-04T14:00:00Z", "2026-03-04T15:45:00Z", "critical")
    assert (gmv["slice"], gmv["value"], gmv["expected"]) == ("region=EU", 40500.0, 41000.0)


@pytest.mark.parametrize(("options", "expected"), [
    (["--since", "1h", "--now", "2026-03-04T17:00:00Z"], [CR]),  # updated 17:00
    (["--since", "75m", "--now", "2026-03-04T17:00:00Z"], [CR, GMV]),  # gmv updated 15:45
    (["--since", "74m", "--now", "2026-03-04T17:00:00Z"], [CR]),
    (["--since", "1h", "--now", "2026-03-04T17:45:00+01:00"], [CR, GMV]),  # 16:45Z
    (["--metric", "gmv"], [GMV]),
    (["--status", "firing"], [CR]),
    (["--status", "resolved", "--metric", "complaint_rate"], []),
])
def test_list_filters(two_episodes: Path, capsys: pytest.CaptureFixture[str],
                      options: list[str], expected: list[str]) -> None:
    code, out, _ = _run(capsys, "alerts", "list", "--input", str(two_episodes), "--json",
                        *options)
    assert code == 0
    assert [e["episode_id"] for e in json.loads(out)] == expected


def test_since_counts_back_from_the_wall_clock_by_default(
    two_episodes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(capsys, "alerts", "list", "--input", str(two_episodes), "--json",
                     "--since", "7d")
    assert json.loads(out) == []  # the records are from March 2026, long before now


def _control_rows() -> list[tuple[str, str | None, Any]]:
    snooze = Silence.create("gmv", {"region": "EU"}, T0 + 20 * MIN, T0 + 80 * MIN, "snoozed",
                            "ana", episode_id=GMV)
    manual = Silence.create("gmv", {}, T0 + 25 * MIN, T0 + 90 * MIN, "deploy", "bo")
    unrelated = Silence.create("violation_rate", {}, T0, T0 + MIN, "other", "cy")
    ack = Ack(episode_id=GMV, user_id="U1", user_name="ana", at_ms=T0 + 17 * MIN)
    feedback = {"kind": "feedback", "episode_id": GMV, "verdict": "real", "user_id": "U2",
                "at_ms": T0 + 100 * MIN}
    other_ack = Ack(episode_id=CR, user_id="U3", at_ms=T0)
    return [("control", s.id, s.to_record()) for s in (snooze, manual, unrelated)] + [
        ("control", ack.id, ack.to_record()), ("control", f"feedback-{GMV}", feedback),
        ("control", other_ack.id, other_ack.to_record())]


@pytest.fixture
def with_control(tmp_path: Path) -> Path:
    """The gmv episode, its 14:30 update also written as a copy silenced by the manual silence,
    and control records: a snooze, an ack and feedback on it, and records of others."""
    records = _fixture()
    manual_id = _control_rows()[1][1]
    silenced = AlertRecord.parse({**records[1].to_dict(), "status": "silenced",
                                  "silenced_by": [manual_id]})
    rows = _alert_rows([records[0], silenced, *records[1:]]) + _control_rows()
    return _dump(tmp_path / "dump.jsonl", rows)


def test_show_is_the_timeline_of_records_and_control_events(
    with_control: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "alerts", "show", GMV, "--input", str(with_control), "--json")
    assert code == 0
    shown = json.loads(out)
    timeline = [(e["type"], e.get("status") or e["kind"]) for e in shown["timeline"]]
    assert timeline == [
        ("record", "firing"),  # 14:15
        ("control", "ack"),  # 14:17
        ("control", "snooze"),  # 14:20
        ("control", "silence"),  # 14:25, named by the silenced copy
        ("record", "firing"), ("record", "silenced"),  # 14:30, the copy after its original
        ("record", "firing"),  # 14:45
        ("control", "feedback"),  # 15:40
        ("record", "resolved"),  # 15:45
    ]
    ack, feedback = shown["timeline"][1], shown["timeline"][7]
    assert (ack["who"], ack["at"]) == ("ana", "2026-03-04T14:17:00Z")
    assert (feedback["who"], feedback["detail"]) == ("U2", "a real issue")
    assert shown["timeline"][0]["hints"][0]["summary"] == "region=EU explains 92% of the change"


def test_show_table_has_values_hints_and_who_handled_it(with_control: Path) -> None:
    episode = find_episode(group_episodes(read_rows(file_rows([with_control]))), GMV)
    assert episode is not None
    buffer = io.StringIO()
    Console(file=buffer, width=220).print(timeline_table(episode))
    text = buffer.getvalue()
    for expected in ("firing (new #0)", "12,000 vs 41,000 (-71%)", "region=EU explains 92%",
                     "ack by ana", "snooze by ana", "until 2026-03-04T15:20:00Z: snoozed",
                     "resolved (resolved #3)", "feedback by U2"):
        assert expected in text


def test_list_table_shows_handling(with_control: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(cli, "out", Console(file=buffer, width=250))
    assert cli.main(["alerts", "list", "--input", str(with_control)]) == 0
    row = next(line for line in buffer.getvalue().splitlines() if GMV in line)
    assert "resolved, critical" in row and "40,500 vs 41,000 (-1%)" in row
    assert "ack ana, snooze ana, silence bo, feedback U2" in row


def test_plain_alerts_jsonl_and_an_id_prefix(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`replay --output` writes bare records, one per line; a unique prefix finds an episode."""
    plain = tmp_path / "alerts.jsonl"
    plain.write_bytes(b"\n".join(r.to_json() for r in _fixture()))
    code, out, _ = _run(capsys, "alerts", "show", "gmv-2026", "--input", str(plain), "--json")
    assert code == 0 and json.loads(out)["episode_id"] == GMV


def test_unreadable_lines_are_counted_and_a_missing_episode_is_one_line(
    two_episodes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with two_episodes.open("a") as fh:
        fh.write('{"topic": "alerts", "value": {"schema": 1}}\nnot json\n')
    code, out, err = _run(capsys, "alerts", "show", "nope", "--input", str(two_episodes))
    assert code == 1 and out == ""
    assert err.splitlines() == ["skipped 2 unreadable records",
                                "error: no episode 'nope' (or several whose id starts with it)"]


def test_missing_file_and_bad_options_are_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "alerts", "list", "--input", str(tmp_path / "none.jsonl"))
    assert code == 1 and err.startswith("error: [Errno 2] No such file")
    for bad in (["--since", "5x"], ["--now", "yesterday"], ["--status", "open"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["alerts", "list", "--input", "x", *bad])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1].startswith("stream-guard alerts list:")


def test_without_input_the_topics_are_read_from_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, str]] = []

    def fake_rows(bootstrap: str, prefix: str = "") -> list[tuple[str, str | None, Any]]:
        asked.append((bootstrap, prefix))
        return _alert_rows(_fixture())

    monkeypatch.setattr(history, "kafka_rows", fake_rows)
    code, out, _ = _run(capsys, "alerts", "list", "--bootstrap", "k:9092", "--prefix", "t-",
                        "--json")
    assert code == 0 and asked == [("k:9092", "t-")]
    assert [e["episode_id"] for e in json.loads(out)] == [GMV]
