"""Feedback and snoozes from Slack: a timeline against the local Slack stand-in, the control
records they become, and `stream-guard feedback report`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from slack_sdk import WebClient

from stream_guard import cli
from stream_guard.alert.feedback import action_to_control, handling_of, precision_by_rule
from stream_guard.alert.notify import Notifier
from stream_guard.alert.silences import ControlView, Feedback, Silence
from stream_guard.clock import ManualClock
from stream_guard.config.routes import load_routes
from stream_guard.errors import InvalidEvent
from stream_guard.sinks.interactivity import AlertAction, interactivity_handler
from stream_guard.sinks.slack import SlackSink
from stream_guard.sinks.slack_integration import SlackIntegration
from stream_guard.types import AlertRecord
from tests.fakes import slack_fixtures
from tests.fakes.slack_server import FAKE_TOKEN, FakeSlack
from tests.unit.sinks.test_interactivity import SECRET, signed

fake_slack = slack_fixtures.fake_slack

REPO = Path(__file__).parents[3]
FIXTURE = Path(__file__).parent / "fixtures" / "gmv_episode.jsonl"
GMV = "gmv-20260304T1400Z-3f9a0c1b"
MIN, HOUR = 60_000, 3_600_000
T0 = 1_772_633_700_000  # 2026-03-04T14:15:00Z, the end of the first window


def gmv(line: int) -> AlertRecord:
    return AlertRecord.parse(FIXTURE.read_text().splitlines()[line])


class Desk:
    """An on-call desk: the notifier on the fake Slack, the interactivity endpoint, and what
    the control topic would hold (a ControlView fed every record the buttons produce)."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake, self.view = fake, ControlView()
        self.records: list[dict[str, Any]] = []
        self.clock = ManualClock(T0)
        client = WebClient(token=FAKE_TOKEN, base_url=fake.base_url, timeout=1)
        slack = SlackIntegration(
            SlackSink(client), lambda episode, now_ms: handling_of(self.view, episode, now_ms))
        self.notifier = Notifier(load_routes(REPO / "alert_rules" / "routes.yaml"), slack, {})
        self.shown = gmv(0)

    def notify(self, alert: AlertRecord, at_ms: int) -> None:
        self.clock.set(at_ms)
        self.shown = alert
        self.notifier.notify(alert, at_ms)

    def press(self, label: str, at_ms: int, user: str = "U0ANALYST") -> int:
        """Press the button `label` of the parent as Slack last showed it; the HTTP status."""
        self.clock.set(at_ms)
        [button] = [b for b in self._buttons() if b["text"]["text"] == label]
        payload = {"type": "block_actions", "user": {"id": user, "username": "ana"},
                   "actions": [{"action_id": button["action_id"], "value": button["value"]}]}
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return asyncio.run(self._post(body, signed(body, ts=at_ms // 1000)))

    def _buttons(self) -> list[dict[str, Any]]:
        parent = [c.body for c in self.fake.calls if "thread_ts" not in c.body][-1]
        blocks = parent["blocks"]
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]

    async def _post(self, body: bytes, headers: dict[str, str]) -> int:
        async def on_action(action: AlertAction) -> None:
            item = action_to_control(action)
            assert item is not None
            self.records.append(item.to_record())
            self.view.apply(item.to_record())  # as the control reader would, from the topic
            self.notifier.refresh(self.shown, self.clock.now_ms())

        app = web.Application()
        app.router.add_post("/i", interactivity_handler(SecretStr(SECRET), self.clock, on_action))
        async with TestClient(TestServer(app)) as client:
            return (await client.post("/i", data=body, headers=headers)).status

    def last_parent_text(self) -> str:
        return json.dumps([c.body for c in self.fake.calls if c.method == "chat.update"][-1])


def test_snooze_and_feedback_timeline(fake_slack: FakeSlack) -> None:
    desk = Desk(fake_slack)
    desk.notify(gmv(0), T0)
    labels = [b["text"]["text"] for b in desk._buttons()]
    assert labels == ["Acknowledge", "Snooze 1h", "Snooze 4h", "Snooze 24h", "Real issue",
                      "False alarm"]

    assert desk.press("Snooze 4h", T0 + 2 * MIN) == 200  # 14:17: mutes gmv/EU until 18:17
    [snooze] = desk.view.silences.values()
    assert (snooze.metric, snooze.slice, snooze.episode_id) == ("gmv", {"region": "EU"}, GMV)
    assert desk.view.silencing("gmv", {"region": "EU"}, T0 + 4 * HOUR + MIN)
    assert not desk.view.silencing("gmv", {"region": "EU"}, T0 + 4 * HOUR + 2 * MIN)
    assert "Snoozed until 18:17 UTC by <@U0ANALYST>" in desk.last_parent_text()

    desk.notify(gmv(3), T0 + 90 * MIN)  # resolved: the parent keeps the verdict buttons
    assert [b["text"]["text"] for b in desk._buttons()] == ["Real issue", "False alarm"]
    assert desk.press("False alarm", T0 + 95 * MIN) == 200
    assert "Marked a false alarm by <@U0ANALYST>" in desk.last_parent_text()
    assert desk.press("Real issue", T0 + 99 * MIN, user="U0LEAD") == 200  # the latest wins
    assert "Marked a real issue by <@U0LEAD>" in desk.last_parent_text()

    kinds = [(r["kind"], r.get("verdict")) for r in desk.records]
    assert kinds == [("silence", None), ("feedback", "false_alarm"), ("feedback", "real")]
    assert desk.view.feedback[GMV].verdict == "real"
    assert dict(desk.view.answers) == {("gmv", "false_alarm"): 1, ("gmv", "real"): 1}


def test_invalid_control_records_are_refused_and_counted() -> None:
    view = ControlView()
    good = {"kind": "feedback", "episode_id": GMV, "verdict": "real", "user_id": "U1",
            "at_ms": 0}
    for bad in ({**good, "verdict": "meh"}, {**good, "user_id": ""}, {**good, "extra": 1},
                {**good, "at_ms": "soon"}, [good], None):
        with pytest.raises(InvalidEvent):
            view.apply(bad)  # type: ignore[arg-type]
    assert view.invalid == {"invalid_control_record": 6}
    assert view.feedback == {}
    assert isinstance(view.apply(good), Feedback)


@pytest.mark.parametrize(("action", "hours"), [("snooze_1h", 1), ("snooze_4h", 4),
                                               ("snooze_24h", 24)])
def test_snoozes_last_what_their_button_says(action: str, hours: int) -> None:
    press = AlertAction(action, GMV, "U1", None, None, None, at_ms=HOUR, metric="gmv")
    snooze = action_to_control(press)
    assert isinstance(snooze, Silence)
    assert (snooze.starts_ms, snooze.ends_ms, snooze.reason) == (
        HOUR, HOUR + hours * HOUR, f"Snooze {hours}h from Slack")
    assert action_to_control(AlertAction(action, GMV, "U1", None, None, None, at_ms=0)) is None
    assert action_to_control(AlertAction("explode", GMV, "U1", None, None, None, at_ms=0)) is None


def _feedback(episode: str, verdict: str, metric: str = "gmv", at_ms: int = T0) -> Feedback:
    return Feedback(episode_id=episode, verdict=verdict, metric=metric,  # type: ignore[arg-type]
                    user_id="U1", at_ms=at_ms)


def test_precision_per_rule_counts_judged_episodes_only() -> None:
    episodes = {"g1": "gmv", "g2": "gmv", "g3": "gmv", "c1": "complaint_rate"}
    rows = precision_by_rule(episodes, [_feedback("g1", "real"), _feedback("g2", "false_alarm"),
                                        _feedback("x9", "real", metric="violation_rate")])
    assert [r.to_dict() for r in rows] == [
        {"metric": "complaint_rate", "episodes": 1, "judged": 0, "real": 0, "false_alarm": 0,
         "precision": None},
        {"metric": "gmv", "episodes": 3, "judged": 2, "real": 1, "false_alarm": 1,
         "precision": 0.5},
        {"metric": "violation_rate", "episodes": 1, "judged": 1, "real": 1, "false_alarm": 0,
         "precision": 1.0},
    ]


def test_feedback_report_from_a_dump(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = [("alerts", r.fingerprint, r.to_dict()) for r in map(gmv, range(4))]
    answers = [_feedback(GMV, "false_alarm"), _feedback(GMV, "real", at_ms=T0 + MIN),
               _feedback("old-episode", "false_alarm", at_ms=T0 - 40 * 24 * HOUR)]
    control = [("control", f.id, f.to_record()) for f in answers]
    dump = tmp_path / "dump.jsonl"
    rows = [*alerts, *control, ("control", "junk", {"kind": "feedback"}), ("alerts", "x", 7)]
    dump.write_text("".join(json.dumps({"topic": t, "key": k, "value": v}) + "\n"
                            for t, k, v in rows))
    argv = ["feedback", "report", "--input", str(dump), "--since", "30d",
            "--now", "2026-03-05T00:00:00Z"]
    assert cli.main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == [{"metric": "gmv", "episodes": 1, "judged": 1, "real": 1,
                                         "false_alarm": 0, "precision": 1.0}]
    assert "skipped 2 unreadable records" in captured.err
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "the last 30d" in table and "100%" in table
    assert cli.main(["feedback", "report", "--input", str(tmp_path / "none.jsonl")]) == 1
    assert "error:" in capsys.readouterr().err
